"""Latency statistics: the one percentile helper that the pipeline, the benchmark and ``convert``'s
verification share, so they can never disagree about the same durations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0}
SUMMARY_KEYS = ("n", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")


def summarize_ms(seconds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``{n, mean_ms, std_ms, min_ms, p50_ms, p90_ms, p99_ms, max_ms}`` of durations given in seconds,
    rounded to 0.1 us (rounding is monotone, so the percentiles keep their order). Empty input: zeros."""
    a = np.asarray(seconds, np.float64).ravel() * 1000.0
    if a.size == 0:
        return {k: (0 if k == "n" else 0.0) for k in SUMMARY_KEYS}
    out: dict[str, float] = {
        "n": int(a.size),
        "mean_ms": float(a.mean()),
        "std_ms": float(a.std()),
        "min_ms": float(a.min()),
    }
    for name, v in zip(PERCENTILES, np.percentile(a, list(PERCENTILES.values()))):
        out[f"{name}_ms"] = float(v)
    out["max_ms"] = float(a.max())
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}
