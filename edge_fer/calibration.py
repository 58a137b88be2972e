"""How far a model's probabilities can be trusted: calibration metrics over labelled predictions.

A classifier is *calibrated* when, among the faces it gives a top probability of about 0.8, about 80%
are right. Three numbers say how far that holds (numpy only; ``edge-fer eval`` and ``edge-fer convert``
report them):

* **ECE**, expected calibration error: the top probabilities are put in ``bins`` equal-width bins over
  [0, 1]; per bin, |accuracy - mean top probability|, weighted by the bin's share of the faces.
  0 is perfect; an over- or under-confident model scores high.
* **NLL**, negative log-likelihood: the mean of ``-log p(true class)`` (each probability clipped at
  :data:`NLL_EPS`, so that a quantized output of exactly 0 costs ``-log(1e-6)`` = 13.8, not infinity).
* **mean top probability**: compare it with the accuracy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ECE_BINS = 15
NLL_EPS = 1e-6


def _checked(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(y, dtype=np.int64)
    if p.ndim != 2 or t.shape != (p.shape[0],):
        raise ValueError(f"probabilities (N, K) and labels (N,) expected, got {p.shape} and {t.shape}")
    return p, t


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (natural log)."""
    p, t = _checked(probs, y)
    if not len(t):
        return 0.0
    return float(-np.mean(np.log(np.clip(p[np.arange(len(t)), t], NLL_EPS, None))))


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Per equal-width bin of the top probability: ``lo``, ``hi``, ``n``, ``accuracy``, ``confidence``
    (the mean top probability); empty bins have ``n`` 0 and ``None`` for the two means. A top
    probability of exactly 1 falls in the last bin."""
    p, t = _checked(probs, y)
    conf = p.max(axis=1) if len(t) else np.zeros(0)
    right = p.argmax(axis=1) == t if len(t) else np.zeros(0, bool)
    idx = np.minimum((conf * bins).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        out.append(
            {
                "lo": round(b / bins, 6),
                "hi": round((b + 1) / bins, 6),
                "n": n,
                "accuracy": float(right[sel].mean()) if n else None,
                "confidence": float(conf[sel].mean()) if n else None,
            }
        )
    return out


def ece(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over ``bins`` equal-width bins of the top probability."""
    rows = reliability(probs, y, bins)
    total = sum(r["n"] for r in rows)
    if not total:
        return 0.0
    return float(sum(r["n"] * abs(r["accuracy"] - r["confidence"]) for r in rows if r["n"]) / total)


def summary(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """``accuracy``, ``ece``, ``nll``, ``mean_confidence``, ``n``, ``bins``: the figures reports carry."""
    p, t = _checked(probs, y)
    n = len(t)
    return {
        "n": n,
        "accuracy": round(float((p.argmax(axis=1) == t).mean()), 6) if n else 0.0,
        "ece": round(ece(p, t, bins), 6),
        "nll": round(nll(p, t), 6),
        "mean_confidence": round(float(p.max(axis=1).mean()), 6) if n else 0.0,
        "bins": bins,
    }
