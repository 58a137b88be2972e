"""The latency benchmark behind ``edge-fer bench``: the real pipeline, every stage timed per frame.

Three modes, one report shape (a plain ``dict``, JSON-serialisable):

* **pipeline** (:func:`bench_pipeline`): builds the real :class:`~edge_fer.pipeline.Pipeline` with
  :meth:`Pipeline.from_config` (the code ``edge-fer run`` uses), drives it with ``step()`` and records,
  per frame, the seven stages it times itself (:data:`~edge_fer.pipeline.STAGES`: capture, detect,
  preprocess, classify, quality (the crop-quality gate, ~0 when off), track, sink) plus the end-to-end time of the step. The recording hook is a
  :class:`StageTimes` subclass swapped into ``pipeline.times``: no copy of the pipeline, no change to
  it. Warm-up frames are run and reported but left out of every figure.
* **model** (:func:`bench_models`): the classifier alone, the way TFLite's ``benchmark_model`` does it
  (init time, first inference, warm-up, N timed runs, percentiles) for several bundles and thread
  counts; one row per (bundle, threads) with format, size and accuracy from the bundle's metadata.
* **compare** (:func:`compare_fer`): the ``fer`` package's default pipeline (Haar + its TFLite model) and
  ours on the same decoded frames, alternating frame by frame in one process.

Percentiles use numpy's linear interpolation, so ``p50 <= p90 <= p99 <= max`` always holds.
Nothing here imports TensorFlow (the ``fer`` peer does, only when :func:`compare_fer` is called).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge_fer.errors import ConfigError, EdgeFerError, MissingExtraError, ModelError, SourceError
from edge_fer.pipeline import STAGES, StageTimes
from edge_fer.redact import redact

log = logging.getLogger(__name__)

SCHEMA = "edge-fer-bench/1"
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0}
BUDGET_PERCENTILES = ("p50", "p90", "p99", "max")
LIVE_DEFAULT_FRAMES = 300  # a camera never ends: measure this many frames unless told otherwise


# --- statistics ---------------------------------------------------------------------------------
def summarize(seconds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``{n, mean_ms, std_ms, min_ms, p50_ms, p90_ms, p99_ms, max_ms}`` of durations in seconds."""
    a = np.asarray(seconds, np.float64) * 1000.0
    if a.size == 0:
        return {"n": 0, "mean_ms": 0.0, "std_ms": 0.0, "min_ms": 0.0, "p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    p = np.percentile(a, list(PERCENTILES.values()))
    out: dict[str, float] = {"n": int(a.size), "mean_ms": float(a.mean()), "std_ms": float(a.std()), "min_ms": float(a.min())}
    for name, v in zip(PERCENTILES, p):
        out[f"{name}_ms"] = float(v)
    out["max_ms"] = float(a.max())
    # rounding is monotone, so the ordering of the percentiles survives it
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


# --- the recording hook ---------------------------------------------------------------------------
class RecordingTimes(StageTimes):
    """:class:`StageTimes` that also keeps what was added since the last :meth:`take`, so the
    benchmark gets every frame's raw stage durations (the ring buffer only keeps a window)."""

    def __init__(self, stages: Sequence[str] = STAGES, window: int = 2048):
        super().__init__(stages, window)
        self.pending: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        super().add(stage, seconds)
        self.pending[stage] = self.pending.get(stage, 0.0) + seconds

    def take(self) -> dict[str, float]:
        p, self.pending = self.pending, {}
        return p


# --- the machine ----------------------------------------------------------------------------------
def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return ""


def _cpu_model() -> str:
    info = _read("/proc/cpuinfo")
    for key in ("model name", "Hardware", "Model", "cpu model", "Processor"):
        for line in info.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == key and v.strip():
                return v.strip()
    return platform.processor() or platform.machine() or "unknown"


def _dist_version(*names: str) -> str | None:
    from edge_fer.doctor import dist_version

    return dist_version(*names)


RUNTIME_DISTS = {
    "ai_edge_litert": ("ai-edge-litert",),
    "tflite_runtime": ("tflite-runtime",),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
}


def runtime_info(classifier: Any | None) -> dict[str, Any]:
    if classifier is None:
        return {}
    backend = getattr(classifier, "backend", None)
    device = getattr(classifier, "device", None)
    threads = getattr(classifier, "threads", None)
    return {
        "backend": backend,
        "version": _dist_version(*RUNTIME_DISTS.get(backend or "", ())),
        "delegate": "edgetpu" if device == "edgetpu" else "none (CPU kernels; XNNPACK where the runtime applies it)",
        "device": device,
        "threads": threads or "default",
    }


def machine_info(classifier: Any | None = None) -> dict[str, Any]:
    """CPU model, board (a Pi's /proc/device-tree/model), cores, Python, OpenCV, runtime and load."""
    import cv2

    from edge_fer import __version__

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    mem = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1024
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": _cpu_model(),
        "board": _read("/proc/device-tree/model") or None,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_mb": mem or None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "edge_fer": __version__,
        "runtime": runtime_info(classifier),
        "load_avg": load,
    }


def _peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (1024 * 1024) if sys.platform == "darwin" else r / 1024, 1)  # bytes on macOS, KiB on Linux


# --- bundles --------------------------------------------------------------------------------------
def read_model(path: str | Path) -> tuple[bytes, Any]:
    """(bytes, :class:`~edge_fer.bundle.ModelMeta`) of a bundle; :class:`ModelError` when unusable."""
    from edge_fer.bundle import read_bundle_meta

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read model {p}: {e.strerror or e}") from None
    try:
        meta = read_bundle_meta(data, str(p))
    except ModelError as e:
        msg = str(e)
        raise ModelError(msg if str(p) in msg else f"{p}: {msg}") from None
    return data, meta


def bundle_format(data: bytes, classifier: Any | None = None) -> str:
    """``edgetpu`` (compiled for the Edge TPU), ``int8`` / ``uint8`` (integer in/out), ``mixed``
    (float in/out, integer tensors inside) or ``float32``."""
    if b"edgetpu-custom-op" in data:
        return "edgetpu"
    if classifier is None:
        return "unknown"
    dt = np.dtype(classifier.input_spec.dtype)
    if dt.kind in "iu":
        return dt.name
    if any(np.dtype(t["dtype"]) in (np.dtype(np.int8), np.dtype(np.uint8)) for t in _tensor_details(classifier)):
        return "mixed"
    return "float32"


def _tensor_details(classifier: Any) -> list[dict]:
    try:
        return list(classifier.interpreter.get_tensor_details())
    except Exception:  # pragma: no cover
        return []


def bundle_accuracy(meta: Any, fmt: str) -> tuple[float | None, str | None]:
    """Accuracy from the bundle's metadata: convert's float/int8 evaluation for that format when
    present, else train's figure for a test split (PrivateTest preferred)."""
    m = getattr(meta, "metrics", None) or {}
    q = m.get("quantized")
    if isinstance(q, dict):
        v = q.get("float" if fmt == "float32" else "int8")
        if isinstance(v, dict) and isinstance(v.get("accuracy"), (int, float)):
            ev = q.get("eval") if isinstance(q.get("eval"), dict) else {}
            return float(v["accuracy"]), ev.get("split")
    cands = [(k, v) for k, v in m.items() if isinstance(v, dict) and isinstance(v.get("accuracy"), (int, float))]
    if not cands:
        return None, None
    for pref in ("private", "test"):
        for k, v in cands:
            if pref in k.lower():
                return float(v["accuracy"]), k
    k, v = cands[0]
    return float(v["accuracy"]), k


def parse_threads(spec: str | int | Sequence[int] | None) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``; ``None`` / ``""`` -> ``[0]`` (0: the interpreter's default)."""
    if spec is None or spec == "":
        return [0]
    if isinstance(spec, int):
        vals = [spec]
    elif isinstance(spec, str):
        try:
            vals = [int(x) for x in spec.replace(" ", "").split(",") if x]
        except ValueError:
            raise ConfigError(f"--threads must be a number or a comma-separated list such as 1,2, got {spec!r}") from None
    else:
        vals = [int(x) for x in spec]
    if not vals or any(v < 0 for v in vals):
        raise ConfigError(f"--threads values must be >= 0, got {spec!r}")
    return list(dict.fromkeys(vals))


# --- real-time budget -----------------------------------------------------------------------------
def budget_ms_from(target_fps: float | None, budget_ms: float | None) -> float | None:
    if target_fps is not None and budget_ms is not None:
        raise ConfigError("give --target-fps or --budget-ms, not both")
    if target_fps is not None:
        if target_fps <= 0:
            raise ConfigError(f"--target-fps must be > 0, got {target_fps}")
        return 1000.0 / target_fps
    if budget_ms is not None:
        if budget_ms <= 0:
            raise ConfigError(f"--budget-ms must be > 0, got {budget_ms}")
        return float(budget_ms)
    return None


def _verdict(value: float, budget: float) -> dict[str, Any]:
    head = budget - value
    return {"value_ms": round(value, 4), "headroom_ms": round(head, 4),
            "headroom_pct": round(100.0 * head / budget, 1), "pass": bool(value <= budget)}


def evaluate_budget(report: dict[str, Any], budget_ms: float, percentile: str = "p99") -> dict[str, Any]:
    """PASS/FAIL per stage (the stage alone against the whole frame budget) and overall (end-to-end
    latency at ``percentile`` within the budget and frames/s at least ``1000 / budget_ms``)."""
    if percentile not in BUDGET_PERCENTILES:
        raise ConfigError(f"--budget-percentile must be one of {', '.join(BUDGET_PERCENTILES)}, got {percentile!r}")
    key = f"{percentile}_ms"
    stages = {name: _verdict(st[key], budget_ms) for name, st in report["stages"].items()}
    e2e = _verdict(report["end_to_end"][key], budget_ms)
    target_fps = 1000.0 / budget_ms
    fps_pass = bool(report["fps"] >= target_fps)
    return {
        "budget_ms": round(budget_ms, 4),
        "target_fps": round(target_fps, 3),
        "percentile": percentile,
        "stages": stages,
        "end_to_end": e2e,
        "fps": report["fps"],
        "fps_pass": fps_pass,
        "fps_headroom_pct": round(100.0 * (report["fps"] - target_fps) / target_fps, 1),
        "pass": bool(e2e["pass"] and fps_pass and all(v["pass"] for v in stages.values())),
    }


def evaluate_model_budget(report: dict[str, Any], budget_ms: float, percentile: str = "p99") -> dict[str, Any]:
    if percentile not in BUDGET_PERCENTILES:
        raise ConfigError(f"--budget-percentile must be one of {', '.join(BUDGET_PERCENTILES)}, got {percentile!r}")
    key = f"{percentile}_ms"
    rows = []
    for r in report["models"]:
        rows.append(None if r.get("error") else _verdict(r["latency"][key], budget_ms))
    ok = [v for v in rows if v is not None]
    return {"budget_ms": round(budget_ms, 4), "target_fps": round(1000.0 / budget_ms, 3), "percentile": percentile,
            "models": rows, "pass": bool(ok) and all(v["pass"] for v in ok)}


# --- pipeline mode --------------------------------------------------------------------------------
def bench_pipeline(
    cfg: Any,
    *,
    warmup: int = 10,
    max_frames: int = 0,
    loops: int = 1,
    timeout: float = 1.0,
    keep_samples: bool = True,
) -> dict[str, Any]:
    """Run the real pipeline built from ``cfg`` (a :class:`~edge_fer.config.Config`) and time it.

    ``max_frames`` counts measured frames (warm-up not included; 0: the whole source, or
    :data:`LIVE_DEFAULT_FRAMES` for a live one). ``loops`` replays a finite source that many times
    (frame indices keep increasing, so the tracker sees one long video). ``keep_samples`` puts the
    raw per-frame milliseconds under ``"samples"`` (for the plot; dropped from the JSON file).
    """
    from edge_fer.pipeline import Pipeline

    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {warmup}")
    if loops < 1:
        raise ConfigError(f"--loop must be >= 1, got {loops}")
    if max_frames < 0:
        raise ConfigError(f"--max-frames must be >= 0, got {max_frames}")
    machine_start_load = _loadavg()
    t_build = time.perf_counter()
    pipe = Pipeline.from_config(cfg)
    build_s = time.perf_counter() - t_build
    rec = RecordingTimes()
    pipe.times = rec
    src = pipe.source
    live = bool(getattr(src, "live", False))
    if live and not max_frames:
        max_frames = LIVE_DEFAULT_FRAMES
        log.info("live source: measuring %d frames (--max-frames to change)", max_frames)

    samples: dict[str, list[float]] = {s: [] for s in STAGES}
    e2e: list[float] = []
    faces: list[int] = []
    warm_e2e: list[float] = []
    processed = 0
    passes = 1
    timeouts = 0
    detect_runs = 0
    every = max(1, int(getattr(pipe, "detect_every", 1)))
    t_begin = cpu_begin = None
    ru_begin = None
    t_end = cpu_end = 0.0
    pc = time.perf_counter
    try:
        t_open = pc()
        pipe.open()
        open_s = pc() - t_open
        while True:
            if t_begin is None and processed >= warmup:
                t_begin, cpu_begin, ru_begin = pc(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
            n_faces = pipe.faces
            detecting = pipe.frames % every == 0
            t0 = pc()
            r = pipe.step(timeout)
            t1 = pc()
            stage_s = rec.take()
            if r is False:  # the end of a finite source: its last (empty) read is not a frame
                if passes < loops and processed > 0:
                    passes += 1
                    src.close()
                    src.open()
                    continue
                break
            if r is None:  # a live source without a frame within the timeout
                timeouts += 1
                continue
            processed += 1
            if processed <= warmup:
                warm_e2e.append(t1 - t0)
                continue
            e2e.append(t1 - t0)
            for s in STAGES:
                samples[s].append(stage_s.get(s, 0.0))
            faces.append(pipe.faces - n_faces)
            detect_runs += detecting
            t_end, cpu_end = t1, time.process_time()
            if max_frames and len(e2e) >= max_frames:
                break
        status = pipe.status()
    finally:
        pipe.close()
    ru_end = resource.getrusage(resource.RUSAGE_SELF)

    name = getattr(src, "name", str(cfg.source.uri))
    if processed == 0:
        raise SourceError(f"{name}: no frames could be read from the source")
    if not e2e:
        raise ConfigError(
            f"{name}: all {processed} frames went to warm-up (--warmup {warmup}); lower --warmup or repeat the source with --loop N"
        )
    wall = max(t_end - t_begin, 1e-9)
    cpu = cpu_end - cpu_begin
    n = len(e2e)
    n_faces = int(sum(faces))
    stage_summ = {s: summarize(samples[s]) for s in STAGES}
    e2e_summ = summarize(e2e)
    e2e_mean = e2e_summ["mean_ms"] or 1e-9
    for s in STAGES:
        stage_summ[s]["share"] = round(stage_summ[s]["mean_ms"] / e2e_mean, 4)
    stage_sum = np.sum([samples[s] for s in STAGES], axis=0)
    e2e_summ["unattributed_mean_ms"] = round(float(np.mean(np.asarray(e2e) - stage_sum) * 1000.0), 4)

    clf = pipe.classifier
    model_path = getattr(clf, "source", None)
    try:
        model_bytes = Path(model_path).read_bytes() if model_path else b""
    except OSError:
        model_bytes = b""
    machine = machine_info(clf)
    machine["load_avg_start"] = machine_start_load
    d = cfg.detector
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "mode": "pipeline",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": redact(name),  # a camera URL's password is not printed nor saved
        "fps": round(n / wall, 3),
        "frames": n,
        "warmup_frames": processed - n,
        "processed_frames": processed,
        "loops": passes,
        "faces": n_faces,
        "faces_per_s": round(n_faces / wall, 3),
        "frames_with_faces": int(sum(1 for f in faces if f)),
        "detect_runs": int(detect_runs),
        "dropped_frames": int(status.get("dropped_frames", 0)),
        "timeouts": timeouts,
        "errors": int(status.get("errors", 0)),
        "wall_s": round(wall, 4),
        "cpu": {
            "process_s": round(cpu, 4),
            "user_s": round(ru_end.ru_utime - ru_begin.ru_utime, 4),
            "system_s": round(ru_end.ru_stime - ru_begin.ru_stime, 4),
            "utilization": round(cpu / wall, 3),  # 1.0 = one core busy for the whole run
            "ms_per_frame": round(1000.0 * cpu / n, 4),
        },
        "peak_rss_mb": _peak_rss_mb(),
        "startup_ms": {"build": round(build_s * 1000, 2), "open": round(open_s * 1000, 2),
                       "first_frame": round(1000 * (warm_e2e[0] if warm_e2e else e2e[0]), 3)},
        "stages": stage_summ,
        "end_to_end": e2e_summ,
        "config": {
            "detector": d.name, "detector_model": d.model or None, "detect_every": d.every, "detect_scale": d.scale,
            "full_every": d.full_every, "min_face": d.min_size, "model": model_path, "device": cfg.model.device, "threads": cfg.model.threads or "default",
            "output": cfg.output.path,
        },
        "model": {
            "path": model_path,
            "format": bundle_format(model_bytes, clf) if model_bytes else "unknown",
            "size_bytes": len(model_bytes),
            "describe": getattr(pipe, "model_name", None),
        },
        "machine": machine,
        "budget": None,
    }
    if keep_samples:
        report["samples"] = {"end_to_end": [round(x * 1000, 4) for x in e2e],
                             **{s: [round(x * 1000, 4) for x in samples[s]] for s in STAGES}}
    return report


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# --- model mode -----------------------------------------------------------------------------------
def _random_batch(spec: Any, batch: int, rng: np.random.Generator) -> np.ndarray:
    shape = (batch, spec.height, spec.width, spec.channels)
    dt = np.dtype(spec.dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dt)
    return rng.random(shape, dtype=np.float32)


def bench_model(
    path: str | Path,
    *,
    threads: int = 0,
    device: str = "auto",
    runs: int = 200,
    warmup: int = 10,
    batch: int = 1,
    seed: int = 0,
    keep_samples: bool = True,
) -> dict[str, Any]:
    """One bundle at one thread count: init, first inference, warm-up, ``runs`` timed runs.

    ``latency`` times ``Classifier.predict`` (what the pipeline's classify stage runs: set the input,
    invoke, read and dequantize the output); ``invoke`` times the interpreter's ``invoke()`` alone,
    as TFLite's ``benchmark_model`` does. The input is random data of the model's dtype."""
    from edge_fer.classify import Classifier

    data, meta = read_model(path)
    row: dict[str, Any] = {"path": str(path), "name": Path(path).name, "size_bytes": len(data),
                           "threads": threads or "default", "batch": batch}
    pc = time.perf_counter
    t0 = pc()
    clf = Classifier(data, source=str(path), device=device, threads=threads or None)
    init = pc() - t0
    fmt = bundle_format(data, clf)
    acc, split = bundle_accuracy(meta, fmt)
    x = _random_batch(clf.input_spec, batch, np.random.default_rng(seed))
    t0 = pc()
    clf.predict(x)
    first = pc() - t0
    for _ in range(warmup):
        clf.predict(x)
    lat = np.empty(runs)
    for i in range(runs):
        t0 = pc()
        clf.predict(x)
        lat[i] = pc() - t0
    interp = clf.interpreter
    inv = np.empty(runs)
    for i in range(runs):
        t0 = pc()
        interp.invoke()
        inv[i] = pc() - t0
    row.update({
        "format": fmt,
        "accuracy": acc,
        "accuracy_split": split,
        "backend": clf.backend,
        "device": clf.device,
        "init_ms": round(init * 1000, 3),
        "first_inference_ms": round(first * 1000, 4),
        "warmup_runs": warmup,
        "runs": runs,
        "latency": summarize(lat),
        "invoke": summarize(inv),
        "inferences_per_s": round(runs / max(float(lat.sum()), 1e-12), 1),
        "error": None,
    })
    if keep_samples:
        row["samples"] = [round(v * 1000, 5) for v in lat]
    return row


def bench_models(
    paths: Sequence[str | Path],
    *,
    threads: Sequence[int] = (0,),
    device: str = "auto",
    runs: int = 200,
    warmup: int = 10,
    batch: int = 1,
    keep_samples: bool = True,
) -> dict[str, Any]:
    """Every bundle at every thread count. Files that are not usable bundles are an error up front;
    a bundle the runtime here cannot run (an Edge TPU model without the accelerator) becomes a row
    with ``error`` set, unless no row at all could run."""
    if runs < 1:
        raise ConfigError(f"--runs must be >= 1, got {runs}")
    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {warmup}")
    if batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {batch}")
    if not paths:
        from edge_fer.classify import default_model_path

        paths = [default_model_path()]
    for p in paths:
        read_model(p)  # unreadable / not a bundle: one clear error before anything runs
    rows: list[dict[str, Any]] = []
    clf_for_machine = None
    for p in paths:
        for t in threads:
            try:
                row = bench_model(p, threads=t, device=device, runs=runs, warmup=warmup, batch=batch,
                                  keep_samples=keep_samples)
            except EdgeFerError as e:
                data = Path(p).read_bytes()
                row = {"path": str(p), "name": Path(p).name, "size_bytes": len(data), "threads": t or "default",
                       "batch": batch, "format": bundle_format(data), "error": str(e)}
                log.warning("skipped %s (threads %s): %s", p, t or "default", e)
            rows.append(row)
            if clf_for_machine is None and not row.get("error"):
                clf_for_machine = row
    if clf_for_machine is None:
        raise ModelError("no model could be run: " + "; ".join(r["error"] for r in rows))
    machine = machine_info()
    machine["runtime"] = {"backend": clf_for_machine["backend"],
                          "version": _dist_version(*RUNTIME_DISTS.get(clf_for_machine["backend"], ())),
                          "delegate": "edgetpu" if any(r.get("device") == "edgetpu" for r in rows) else "none",
                          "device": device, "threads": [t or "default" for t in threads]}
    return {
        "schema": SCHEMA,
        "mode": "model",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runs": runs,
        "warmup_runs": warmup,
        "batch": batch,
        "models": rows,
        "peak_rss_mb": _peak_rss_mb(),
        "machine": machine,
        "budget": None,
    }


# --- the fer side-by-side -------------------------------------------------------------------------
FER_INSTALL_HINT = (
    "pip install --no-deps fer && pip install tensorflow-cpu 'opencv-python-headless<5' 'setuptools<81' "
    "pandas requests pillow matplotlib tqdm  (in a separate venv: see benchmarks/compare_fer.py)"
)


class PeerMissingError(MissingExtraError):
    """The ``fer`` package (the side-by-side peer) is not importable."""

    def __init__(self, reason: str):
        EdgeFerError.__init__(self, f"--compare fer needs the 'fer' package ({reason}); install it leanly: {FER_INSTALL_HINT}")
        self.extra = "fer"


def _import_fer():
    try:
        from fer.fer import FER  # noqa: PLC0415 - optional peer, imports TensorFlow
    except ImportError as e:
        raise PeerMissingError(f"{type(e).__name__}: {e}") from None
    return FER


def load_frames(uri: str, max_frames: int = 0, loops: int = 1) -> tuple[list[np.ndarray], str]:
    """Decode a finite source once (with the project's own source classes) into memory."""
    from edge_fer.sources import open_source

    src = open_source(uri)
    if getattr(src, "live", False):
        raise ConfigError("--compare needs a finite source (a video file or images), not a live camera")
    imgs: list[np.ndarray] = []
    src.open()
    try:
        while True:
            f = src.read()
            if f is None:
                break
            imgs.append(f.image)
            if max_frames and len(imgs) >= max_frames:
                break
    finally:
        src.close()
    if not imgs:
        raise SourceError(f"{getattr(src, 'name', uri)}: no frames could be read from the source")
    frames = imgs * loops
    if max_frames:
        frames = frames[:max_frames]
    return frames, getattr(src, "name", str(uri))


def compare_fer(cfg: Any, *, max_frames: int = 0, warmup: int = 5, loops: int = 1) -> dict[str, Any]:
    """Ours (the real pipeline from ``cfg``, stages from detection to sink) and the ``fer`` package's
    default pipeline (``FER()``: OpenCV Haar + its TFLite model, ``detect_emotions``) on the same
    decoded frames, alternating frame by frame (who goes first alternates too), one process.

    Decoding is done once up front and is not timed for either. Warm-up frames run both, untimed."""
    from edge_fer.pipeline import Pipeline
    from edge_fer.types import Frame

    FER = _import_fer()
    frames, name = load_frames(cfg.source.uri, 0, 1)
    total = len(frames) * loops
    if max_frames:
        total = min(total, max_frames + warmup)
    if total <= warmup:
        raise ConfigError(f"{name}: {total} frames, all used as warm-up (--warmup {warmup}); lower --warmup or use --loop")
    t0 = time.perf_counter()
    fer = FER()
    fer_init = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipe = Pipeline.from_config(cfg)  # its source is built but never opened: frames are fed to process()
    ours_init = time.perf_counter() - t0
    ours_t: list[float] = []
    fer_t: list[float] = []
    ours_n: list[int] = []
    fer_n: list[int] = []
    pc = time.perf_counter
    try:
        for i in range(total):
            img = frames[i % len(frames)]

            def run_ours() -> tuple[float, int]:
                before = pipe.faces
                t = pc()
                pipe.process(Frame(img, i, time.time(), None))
                return pc() - t, pipe.faces - before

            def run_fer() -> tuple[float, int]:
                t = pc()
                res = fer.detect_emotions(img)
                return pc() - t, len(res)

            if i % 2 == 0:
                (ta, na), (tb, nb) = run_ours(), run_fer()
            else:
                (tb, nb), (ta, na) = run_fer(), run_ours()
            if i < warmup:
                continue
            ours_t.append(ta)
            ours_n.append(na)
            fer_t.append(tb)
            fer_n.append(nb)
    finally:
        pipe.close()
    n = len(ours_t)
    ours_fps = n / sum(ours_t)
    fer_fps = n / sum(fer_t)
    same = sum(1 for a, b in zip(ours_n, fer_n) if a == b)
    d = cfg.detector
    return {
        "schema": SCHEMA,
        "mode": "compare",
        "peer": "fer",
        "peer_version": _dist_version("fer"),
        "source": redact(name),  # a camera URL's password is not printed nor saved
        "frames": n,
        "warmup_frames": min(warmup, total),
        "timed": "detection to sink for ours (Pipeline.process), FER.detect_emotions for fer; decoding excluded for both",
        "ours": {"fps": round(ours_fps, 3), "latency": summarize(ours_t), "faces": int(sum(ours_n)),
                 "frames_with_faces": int(sum(1 for x in ours_n if x)), "init_ms": round(ours_init * 1000, 1),
                 "config": {"detector": d.name, "detect_every": d.every, "detect_scale": d.scale, "full_every": d.full_every,
                            "model": getattr(pipe.classifier, "source", None)}},
        "fer": {"fps": round(fer_fps, 3), "latency": summarize(fer_t), "faces": int(sum(fer_n)),
                "frames_with_faces": int(sum(1 for x in fer_n if x)), "init_ms": round(fer_init * 1000, 1),
                "config": "FER() defaults: OpenCV Haar cascade, its emotion_model TFLite"},
        "fps_ratio": round(ours_fps / fer_fps, 3),
        "same_face_count_frames": same,
        "same_face_count_fraction": round(same / n, 4),
        "same_total_faces": bool(sum(ours_n) == sum(fer_n)),
        "machine": machine_info(pipe.classifier),
    }


# --- output ---------------------------------------------------------------------------------------
def _f(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align_left: int = 1) -> list[str]:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for j, r in enumerate(cells):
        parts = [c.ljust(widths[i]) if i < align_left else c.rjust(widths[i]) for i, c in enumerate(r)]
        out.append("  ".join(parts).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def _machine_line(m: dict[str, Any]) -> str:
    rt = m.get("runtime") or {}
    board = f"{m['board']}, " if m.get("board") else ""
    load = m.get("load_avg")
    return (
        f"machine: {board}{m.get('cpu')} ({m.get('arch')}), {m.get('cores')} cores ({m.get('usable_cores')} usable), "
        f"Python {m.get('python')}, OpenCV {m.get('opencv')}, runtime {rt.get('backend')} {rt.get('version') or ''}".rstrip()
        + f", delegate {rt.get('delegate', '-')}, threads {rt.get('threads', '-')}"
        + (f", load avg {' '.join(str(x) for x in load)}" if load else "")
    )


def format_pipeline(rep: dict[str, Any]) -> str:
    c = rep["config"]
    lines = [
        f"edge-fer bench: {rep['source']}: {rep['frames']} frames measured (+{rep['warmup_frames']} warm-up"
        f"{', ' + str(rep['loops']) + ' passes' if rep['loops'] > 1 else ''})",
        f"config: detector {c['detector']} every {c['detect_every']} at scale {c['detect_scale']}"
        f"{', full frame every ' + str(c['full_every']) + ' (windows between)' if c.get('full_every') else ''}, model "
        f"{Path(str(c['model'])).name} ({rep['model']['format']}, {rep['model']['size_bytes'] / 1024:.0f} KiB), "
        f"device {c['device']}, threads {c['threads']}",
        "",
    ]
    rows = []
    for name, s in rep["stages"].items():
        rows.append([name, _f(s["mean_ms"], 3), _f(s["p50_ms"], 3), _f(s["p90_ms"], 3), _f(s["p99_ms"], 3),
                     _f(s["max_ms"], 3), f"{100 * s['share']:.1f}%"])
    e = rep["end_to_end"]
    rows.append(["end-to-end", _f(e["mean_ms"], 3), _f(e["p50_ms"], 3), _f(e["p90_ms"], 3), _f(e["p99_ms"], 3),
                 _f(e["max_ms"], 3), "100%"])
    lines += _table(["stage (ms)", "mean", "p50", "p90", "p99", "max", "share"], rows)
    cpu = rep["cpu"]
    lines += [
        "",
        f"{rep['fps']:.1f} frames/s, {rep['faces_per_s']:.1f} faces/s ({rep['faces']} faces in {rep['frames_with_faces']}"
        f" of {rep['frames']} frames, detection ran on {rep['detect_runs']}), dropped {rep['dropped_frames']}",
        f"CPU {cpu['process_s']:.2f} s ({cpu['ms_per_frame']:.2f} ms/frame, {100 * cpu['utilization']:.0f}% of one core), "
        f"peak RSS {rep['peak_rss_mb']:.0f} MB, first frame {rep['startup_ms']['first_frame']:.1f} ms",
        _machine_line(rep["machine"]),
    ]
    if rep.get("budget"):
        lines += ["", *format_budget(rep["budget"])]
    return "\n".join(lines)


def format_budget(b: dict[str, Any]) -> list[str]:
    pct = b["percentile"]
    lines = [f"real-time budget: {b['budget_ms']:.2f} ms/frame ({b['target_fps']:.1f} frames/s), judged at {pct}"]
    rows = []
    for name, v in b["stages"].items():
        rows.append([name, _f(v["value_ms"], 3), f"{v['headroom_ms']:+.3f}", f"{v['headroom_pct']:+.1f}%",
                     "PASS" if v["pass"] else "FAIL"])
    v = b["end_to_end"]
    rows.append(["end-to-end", _f(v["value_ms"], 3), f"{v['headroom_ms']:+.3f}", f"{v['headroom_pct']:+.1f}%",
                 "PASS" if v["pass"] else "FAIL"])
    rows.append(["frames/s", _f(b["fps"], 1), f"{b['fps'] - b['target_fps']:+.1f}", f"{b['fps_headroom_pct']:+.1f}%",
                 "PASS" if b["fps_pass"] else "FAIL"])
    lines += _table(["check", f"{pct} ms", "headroom ms", "headroom", "verdict"], rows)
    lines.append(f"overall: {'PASS' if b['pass'] else 'FAIL'}")
    return lines


def format_models(rep: dict[str, Any]) -> str:
    lines = [f"edge-fer bench --model-only: batch {rep['batch']}, {rep['warmup_runs']} warm-up + {rep['runs']} timed runs", ""]
    rows = []
    budget = rep.get("budget")
    for i, r in enumerate(rep["models"]):
        acc = "-" if r.get("accuracy") is None else f"{100 * r['accuracy']:.1f}%"
        if r.get("error"):
            rows.append([r["name"], r["format"], f"{r['size_bytes'] / 1024:.0f}", acc, r["threads"], "-", "-", "-", "-", "-", "-",
                         "skipped"] + ([""] if budget else []))
            continue
        lat, inv = r["latency"], r["invoke"]
        row = [r["name"], r["format"], f"{r['size_bytes'] / 1024:.0f}", acc, r["threads"], _f(r["init_ms"], 1),
               _f(r["first_inference_ms"], 3), _f(lat["p50_ms"], 4), _f(lat["p90_ms"], 4), _f(lat["p99_ms"], 4),
               _f(inv["p50_ms"], 4), f"{r['inferences_per_s']:.0f}"]
        if budget:
            v = budget["models"][i]
            row.append(f"{'PASS' if v['pass'] else 'FAIL'} {v['headroom_pct']:+.0f}%")
        rows.append(row)
    headers = ["model", "format", "KiB", "accuracy", "threads", "init ms", "first ms", "p50 ms", "p90 ms", "p99 ms",
               "invoke p50", "inf/s"] + ([f"budget ({budget['percentile']})"] if budget else [])
    lines += _table(headers, rows)
    for r in rep["models"]:
        if r.get("error"):
            lines.append(f"skipped {r['name']} (threads {r['threads']}): {r['error']}")
    splits = {r.get("accuracy_split") for r in rep["models"] if r.get("accuracy_split")}
    if splits:
        lines.append(f"accuracy from the bundles' metadata ({', '.join(sorted(splits))})")
    if budget:
        lines.append(f"budget {budget['budget_ms']:.2f} ms per inference: overall {'PASS' if budget['pass'] else 'FAIL'}")
    lines.append(_machine_line(rep["machine"]))
    return "\n".join(lines)


def format_compare(rep: dict[str, Any]) -> str:
    o, f = rep["ours"], rep["fer"]
    rows = [
        ["edge-fer", _f(o["fps"], 1), _f(o["latency"]["p50_ms"], 2), _f(o["latency"]["p99_ms"], 2), o["faces"], o["frames_with_faces"]],
        [f"fer {rep.get('peer_version') or ''}".strip(), _f(f["fps"], 1), _f(f["latency"]["p50_ms"], 2), _f(f["latency"]["p99_ms"], 2),
         f["faces"], f["frames_with_faces"]],
    ]
    lines = [f"side-by-side on {rep['source']}: {rep['frames']} frames (+{rep['warmup_frames']} warm-up), alternating, one process", ""]
    lines += _table(["pipeline", "frames/s", "p50 ms", "p99 ms", "faces", "frames with faces"], rows)
    lines += [
        "",
        f"frames/s ratio (edge-fer / fer): {rep['fps_ratio']:.2f}x",
        f"same number of faces on {rep['same_face_count_frames']} of {rep['frames']} frames "
        f"({100 * rep['same_face_count_fraction']:.1f}%); same total: {'yes' if rep['same_total_faces'] else 'no'}",
        _machine_line(rep["machine"]),
    ]
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: str | Path) -> None:
    """The report without the raw per-frame samples (they are for the plot)."""
    def strip(d: Any) -> Any:
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k != "samples"}
        if isinstance(d, list):
            return [strip(v) for v in d]
        return d

    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(strip(report), indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write {p}: {e.strerror or e}") from None


def plot(report: dict[str, Any], path: str | Path) -> None:
    """Per-stage latency distributions (box plots, log scale) and, for the pipeline, the per-frame
    end-to-end latency with the budget line. Needs matplotlib (the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise MissingExtraError("--plot", "plot", e.name or "matplotlib") from None
    p = Path(path)
    if report["mode"] == "pipeline":
        s = report.get("samples") or {}
        names = [*STAGES, "end_to_end"]
        data = [np.maximum(np.asarray(s.get(n, [0.0])), 1e-4) for n in names]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.2, 1]})
        a1.boxplot(data, whis=(1, 99), showfliers=True, flierprops={"markersize": 2, "alpha": 0.4})
        a1.set_xticks(range(1, len(names) + 1), [n.replace("_", "-") for n in names], rotation=20)
        a1.set_yscale("log")
        a1.set_ylabel("ms per frame (log)")
        a1.set_title("per-stage latency (box: p25-p75, whiskers: p1-p99)")
        e = np.asarray(s.get("end_to_end", []))
        a2.plot(np.arange(len(e)), e, lw=0.8, label="end-to-end")
        if "detect" in s:
            a2.plot(np.arange(len(e)), s["detect"], lw=0.6, alpha=0.7, label="detect")
        if report.get("budget"):
            a2.axhline(report["budget"]["budget_ms"], color="red", ls="--", lw=1, label="budget")
        a2.set_xlabel("measured frame")
        a2.set_ylabel("ms")
        a2.set_title(f"{report['fps']:.1f} frames/s")
        a2.legend(fontsize=8)
        fig.suptitle(f"edge-fer bench: {Path(str(report['source'])).name} ({report['config']['detector']}, "
                     f"every {report['config']['detect_every']}, scale {report['config']['detect_scale']})", fontsize=10)
    else:
        rows = [r for r in report["models"] if not r.get("error") and r.get("samples")]
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rows) + 2), 4.5))
        if rows:
            ax.boxplot([r["samples"] for r in rows], whis=(1, 99), showfliers=False)
            ax.set_xticks(range(1, len(rows) + 1), [f"{r['name']}\n{r['format']}, t={r['threads']}" for r in rows], fontsize=8)
        if report.get("budget"):
            ax.axhline(report["budget"]["budget_ms"], color="red", ls="--", lw=1)
        ax.set_ylabel("ms per inference")
        ax.set_title(f"classifier latency, batch {report['batch']} (whiskers p1-p99)")
    fig.tight_layout()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=110)
    except OSError as e:
        raise ConfigError(f"cannot write {p}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
