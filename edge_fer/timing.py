"""Per-stage timing of the runtime: cheap on the hot path, summarised only when asked.

:class:`StageTimes` holds one :class:`StageStats` ring buffer per stage (names:
:data:`edge_fer.pipeline.STAGES`); adding a duration is one ``perf_counter`` pair and a ring-buffer
write. Summaries (``/metrics``, ``Pipeline.status``) use :func:`edge_fer.stats.summarize_ms`, the one
percentile helper the benchmark shares. :class:`FpsMeter` is frames per second over a sliding
window that ends now.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from edge_fer.stats import summarize_ms


class StageStats:
    """A ring buffer of the last ``window`` durations (seconds) of one stage, their count and the
    all-time maximum."""

    __slots__ = ("buf", "n", "max")

    def __init__(self, window: int = 2048):
        self.buf = np.zeros(window, np.float64)
        self.n = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self.buf[self.n % len(self.buf)] = seconds
        self.n += 1
        if seconds > self.max:
            self.max = seconds

    def summary(self) -> dict[str, float]:
        """:func:`edge_fer.stats.summarize_ms` (:data:`edge_fer.stats.SUMMARY_KEYS`) over the window;
        ``max_ms`` is the all-time maximum."""
        s = summarize_ms(self.buf[: min(self.n, len(self.buf))])
        s["max_ms"] = round(self.max * 1000.0, 4) if self.n else 0.0
        return s


class StageTimes:
    """Per-stage timings. Hot path: ``t = times.start(); ...; times.add("detect", times.start() - t)``."""

    def __init__(self, stages: Sequence[str], window: int = 2048):
        self.window = window
        self.stages: dict[str, StageStats] = {s: StageStats(window) for s in stages}

    start = staticmethod(time.perf_counter)

    def add(self, stage: str, seconds: float) -> None:
        st = self.stages.get(stage)
        if st is None:
            st = self.stages[stage] = StageStats(self.window)
        st.add(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: st.summary() for name, st in list(self.stages.items())}


class FpsMeter:
    """Frames per second over the last ``window`` frames *up to now*: the time since the oldest of them
    is measured to the moment of asking, not to the newest frame, so the rate falls as soon as frames
    stop (a stalled camera reads as slowing down, then near 0, never as the rate it last had)."""

    def __init__(self, window: int = 60, clock: Callable[[], float] = time.monotonic):
        self.ts = np.zeros(window, np.float64)
        self.n = 0
        self.clock = clock

    def tick(self, t: float | None = None) -> None:
        self.ts[self.n % len(self.ts)] = self.clock() if t is None else t
        self.n += 1

    @property
    def fps(self) -> float:
        k = min(self.n, len(self.ts))
        if k < 2:
            return 0.0
        oldest = self.ts[(self.n - k) % len(self.ts)]
        span = self.clock() - oldest
        return (k - 1) / span if span > 0 else 0.0
