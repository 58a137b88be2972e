"""The pipeline benchmark: the real :class:`~edge_fer.pipeline.Pipeline`, every stage timed per frame.

The pipeline is built with :meth:`Pipeline.from_config` (the code ``edge-fer run`` uses) and driven
with ``step()``; per frame it records the stages the pipeline times itself
(:data:`~edge_fer.pipeline.STAGES`) plus the end-to-end time of the step. The recording hook is a
:class:`StageTimes` subclass swapped into ``pipeline.times``: no copy of the pipeline, no change to
it. Warm-up frames are run and reported but left out of every figure. A live source (a camera)
is measured for :data:`LIVE_DEFAULT_FRAMES` frames unless told otherwise.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_fer.bench.bundle import bundle_format
from edge_fer.bench.machine import loadavg, machine_info, peak_rss_mb
from edge_fer.bench.report import BenchedConfig, CpuUse, ModelInfo, PipelineReport, Startup
from edge_fer.errors import ConfigError, SourceError
from edge_fer.models import display_path
from edge_fer.pipeline import STAGES, StageTimes
from edge_fer.redact import redact
from edge_fer.sources import SourceMode
from edge_fer.stats import summarize_ms

log = logging.getLogger(__name__)

LIVE_DEFAULT_FRAMES = 300  # a camera never ends: measure this many frames unless told otherwise


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


@dataclass
class _Run:
    """What the measuring loop saw (seconds, per measured frame unless said otherwise)."""

    samples: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    e2e: list[float] = field(default_factory=list)
    faces: list[int] = field(default_factory=list)
    warm_e2e: list[float] = field(default_factory=list)  # the warm-up frames'
    processed: int = 0
    passes: int = 1
    timeouts: int = 0
    detect_runs: int = 0
    open_s: float = 0.0
    t_begin: float = 0.0
    t_end: float = 0.0
    cpu_begin: float = 0.0
    cpu_end: float = 0.0
    ru_begin: Any = None
    ru_end: Any = None
    status: dict[str, Any] = field(default_factory=dict)


def _measure(pipe: Any, rec: RecordingTimes, *, warmup: int, max_frames: int, loops: int, timeout: float) -> _Run:
    run = _Run()
    src = pipe.source
    every = max(1, int(getattr(pipe, "detect_every", 1)))
    started = False
    pc = time.perf_counter
    try:
        t_open = pc()
        pipe.open()
        run.open_s = pc() - t_open
        while True:
            if not started and run.processed >= warmup:
                started = True
                run.t_begin, run.cpu_begin = pc(), time.process_time()
                run.ru_begin = resource.getrusage(resource.RUSAGE_SELF)
            n_faces = pipe.faces
            detecting = pipe.frames % every == 0
            t0 = pc()
            r = pipe.step(timeout)
            t1 = pc()
            stage_s = rec.take()
            if r is False:  # the end of a finite source: its last (empty) read is not a frame
                if run.passes < loops and run.processed > 0:
                    run.passes += 1
                    src.close()
                    src.open()
                    continue
                break
            if r is None:  # a live source without a frame within the timeout
                run.timeouts += 1
                continue
            run.processed += 1
            if run.processed <= warmup:
                run.warm_e2e.append(t1 - t0)
                continue
            run.e2e.append(t1 - t0)
            for s in STAGES:
                run.samples[s].append(stage_s.get(s, 0.0))
            run.faces.append(pipe.faces - n_faces)
            run.detect_runs += detecting
            run.t_end, run.cpu_end = t1, time.process_time()
            if max_frames and len(run.e2e) >= max_frames:
                break
            if pipe.failed_output():  # an events file that cannot be written: stop, as edge-fer run does
                break
        run.status = pipe.status().to_dict()
    finally:
        pipe.close()
    pipe.check_outputs()  # --events that gave up, crops or a video not written: exit 74, not a clean report
    run.ru_end = resource.getrusage(resource.RUSAGE_SELF)
    return run


def bench_pipeline(
    cfg: Any,
    *,
    warmup: int = 10,
    max_frames: int = 0,
    loops: int = 1,
    timeout: float = 1.0,
    keep_samples: bool = True,
) -> PipelineReport:
    """Run the real pipeline built from ``cfg`` (a :class:`~edge_fer.config.Config`) and time it.

    ``max_frames`` counts measured frames (warm-up not included; 0: the whole source, or
    :data:`LIVE_DEFAULT_FRAMES` for a live one). ``loops`` replays a finite source that many times
    (frame indices keep increasing, so the tracker sees one long video). ``keep_samples`` keeps the
    raw per-frame milliseconds in ``samples`` (for the plot; never in the JSON file).
    """
    from edge_fer.pipeline import Pipeline

    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {warmup}")
    if loops < 1:
        raise ConfigError(f"--repeat must be >= 1, got {loops}")
    if max_frames < 0:
        raise ConfigError(f"--max-frames must be >= 0, got {max_frames}")
    load_start = loadavg()
    t_build = time.perf_counter()
    pipe = Pipeline.from_config(cfg)
    build_s = time.perf_counter() - t_build
    rec = RecordingTimes()
    pipe.times = rec
    if pipe.source.mode is SourceMode.LIVE and not max_frames:
        max_frames = LIVE_DEFAULT_FRAMES
        log.info("live source: measuring %d frames (--max-frames to change)", max_frames)
    run = _measure(pipe, rec, warmup=warmup, max_frames=max_frames, loops=loops, timeout=timeout)

    name = getattr(pipe.source, "name", str(cfg.source.uri))
    if run.processed == 0:
        raise SourceError(f"{name}: no frames could be read from the source")
    if not run.e2e:
        raise ConfigError(
            f"{name}: all {run.processed} frames went to warm-up (--warmup {warmup}); lower --warmup "
            "or repeat the source with --repeat N"
        )
    report = _report(cfg, pipe, run, name, build_s)
    report.machine["load_avg_start"] = load_start
    if keep_samples:
        report.samples = {
            "end_to_end": [round(x * 1000, 4) for x in run.e2e],
            **{s: [round(x * 1000, 4) for x in run.samples[s]] for s in STAGES},
        }
    return report


def _report(cfg: Any, pipe: Any, run: _Run, name: str, build_s: float) -> PipelineReport:
    wall = max(run.t_end - run.t_begin, 1e-9)
    cpu = run.cpu_end - run.cpu_begin
    n = len(run.e2e)
    n_faces = int(sum(run.faces))
    stages: dict[str, dict[str, float]] = {s: summarize_ms(run.samples[s]) for s in STAGES}
    e2e = summarize_ms(run.e2e)
    e2e_mean = e2e["mean_ms"] or 1e-9
    for s in STAGES:
        stages[s]["share"] = round(stages[s]["mean_ms"] / e2e_mean, 4)
    stage_sum = np.sum([run.samples[s] for s in STAGES], axis=0)
    e2e["unattributed_mean_ms"] = round(float(np.mean(np.asarray(run.e2e) - stage_sum) * 1000.0), 4)

    clf = pipe.classifier
    model_path = display_path(getattr(clf, "source", None))
    try:
        model_bytes = Path(model_path).read_bytes() if model_path else b""
    except OSError:
        model_bytes = b""
    d = cfg.detector
    first = run.warm_e2e[0] if run.warm_e2e else run.e2e[0]
    return PipelineReport(
        source=redact(name),  # a camera URL's password is not printed nor saved
        fps=round(n / wall, 3),
        frames=n,
        warmup_frames=run.processed - n,
        processed_frames=run.processed,
        loops=run.passes,
        faces=n_faces,
        faces_per_s=round(n_faces / wall, 3),
        frames_with_faces=int(sum(1 for f in run.faces if f)),
        detect_runs=int(run.detect_runs),
        dropped_frames=int(run.status.get("dropped_frames", 0)),
        timeouts=run.timeouts,
        errors=int(run.status.get("errors", 0)),
        wall_s=round(wall, 4),
        cpu=CpuUse(
            process_s=round(cpu, 4),
            user_s=round(run.ru_end.ru_utime - run.ru_begin.ru_utime, 4),
            system_s=round(run.ru_end.ru_stime - run.ru_begin.ru_stime, 4),
            utilization=round(cpu / wall, 3),
            ms_per_frame=round(1000.0 * cpu / n, 4),
        ),
        peak_rss_mb=peak_rss_mb(),
        startup_ms=Startup(
            build=round(build_s * 1000, 2), open=round(run.open_s * 1000, 2), first_frame=round(1000 * first, 3)
        ),
        stages=stages,
        end_to_end=e2e,
        config=BenchedConfig(
            detector=d.name,
            detector_model=d.model or None,
            detect_every=d.every,
            detect_scale=d.scale,
            full_every=d.full_every,
            min_face=d.min_size,
            model=model_path,
            device=cfg.model.device,
            threads=cfg.model.threads,
            output=cfg.output.path,
        ),
        model=ModelInfo(
            path=model_path,
            format=bundle_format(model_bytes, clf) if model_bytes else "unknown",
            size_bytes=len(model_bytes),
            describe=getattr(pipe, "model_name", None),
        ),
        machine=machine_info(clf),
    )
