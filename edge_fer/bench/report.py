"""The bench reports: dataclasses whose :meth:`~JsonRecord.to_dict` is the JSON file (schema
``edge-fer-bench/1``). Latency figures inside them are :func:`edge_fer.stats.summarize_ms` dicts."""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

SCHEMA = "edge-fer-bench/1"


def key(name: str) -> Any:
    """A field written under another JSON key (``pass`` is a Python keyword)."""
    return field(metadata={"key": name})


def internal() -> Any:
    """A field left out of the JSON (the raw per-frame samples are for the plot only)."""
    return field(default=None, repr=False, metadata={"json": False})


def optional() -> Any:
    """A key that is in the JSON only when it has a value."""
    return field(default=None, metadata={"omit_none": True})


def _plain(v: Any) -> Any:
    if isinstance(v, JsonRecord):
        return v.to_dict()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


class JsonRecord:
    """``to_dict``: every field in declaration order under its name (or its ``key``)."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # set by @dataclass on every subclass

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if not f.metadata.get("json", True) or (v is None and f.metadata.get("omit_none")):
                continue
            out[f.metadata.get("key", f.name)] = _plain(v)
        return out


# --- real-time budget -----------------------------------------------------------------------------
@dataclass
class Verdict(JsonRecord):
    value_ms: float
    headroom_ms: float
    headroom_pct: float
    passed: bool = key("pass")


@dataclass
class PipelineBudget(JsonRecord):
    budget_ms: float
    target_fps: float
    percentile: str
    stages: dict[str, Verdict]
    end_to_end: Verdict
    fps: float
    fps_pass: bool
    fps_headroom_pct: float
    passed: bool = key("pass")


@dataclass
class ModelBudget(JsonRecord):
    budget_ms: float
    target_fps: float
    percentile: str
    models: list[Verdict | None]  # None for a row that could not run
    passed: bool = key("pass")


# --- pipeline mode --------------------------------------------------------------------------------
@dataclass
class CpuUse(JsonRecord):
    process_s: float
    user_s: float
    system_s: float
    utilization: float  # 1.0 = one core busy for the whole run
    ms_per_frame: float


@dataclass
class Startup(JsonRecord):
    build: float
    open: float
    first_frame: float


@dataclass
class BenchedConfig(JsonRecord):
    """The run config's figures that shape the timing."""

    detector: str
    detector_model: str | None
    detect_every: int
    detect_scale: float
    full_every: int
    min_face: int
    model: str | None
    device: str
    threads: int  # 0: the interpreter's default
    output: str


@dataclass
class ModelInfo(JsonRecord):
    path: str | None
    format: str
    size_bytes: int
    describe: str | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(kw_only=True)
class BenchReport(JsonRecord):
    """The head every bench report starts with; ``mode`` is set by each kind."""

    schema: str = SCHEMA
    mode: str
    created: str = field(default_factory=_now)


@dataclass(kw_only=True)
class PipelineReport(BenchReport):
    mode: str = "pipeline"
    source: str
    fps: float
    frames: int
    warmup_frames: int
    processed_frames: int
    loops: int
    faces: int
    faces_per_s: float
    frames_with_faces: int
    detect_runs: int
    dropped_frames: int
    timeouts: int
    errors: int
    wall_s: float
    cpu: CpuUse
    peak_rss_mb: float
    startup_ms: Startup
    stages: dict[str, dict[str, float]]
    end_to_end: dict[str, float]
    config: BenchedConfig
    model: ModelInfo
    machine: dict[str, Any]
    budget: PipelineBudget | None = None
    compare: JsonRecord | None = optional()  # --compare: the peer's report (edge_fer.bench.compare_fer)
    samples: dict[str, list[float]] | None = internal()  # ms per measured frame: end_to_end and each stage


# --- model mode -----------------------------------------------------------------------------------
@dataclass(kw_only=True)
class BundleRun(JsonRecord):
    """Which bundle, at which thread count and batch: the head of every row of the model mode."""

    path: str
    name: str
    size_bytes: int
    threads: int  # 0: the interpreter's default
    batch: int
    format: str


@dataclass(kw_only=True)
class ModelRow(BundleRun):
    """One bundle at one thread count, timed."""

    accuracy: float | None
    accuracy_split: str | None
    backend: str
    device: str
    init_ms: float
    first_inference_ms: float
    warmup_runs: int
    runs: int
    latency: dict[str, float]  # Classifier.predict
    invoke: dict[str, float]  # interpreter.invoke() alone
    inferences_per_s: float
    error: None = None
    samples: list[float] | None = internal()  # ms per timed run


@dataclass(kw_only=True)
class SkippedModel(BundleRun):
    """A bundle the runtime here cannot run (an Edge TPU model without the accelerator)."""

    error: str


@dataclass(kw_only=True)
class ModelsReport(BenchReport):
    mode: str = "model"
    runs: int
    warmup_runs: int
    batch: int
    models: list[ModelRow | SkippedModel]
    peak_rss_mb: float
    machine: dict[str, Any]
    budget: ModelBudget | None = None
