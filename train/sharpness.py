"""Detect, and compensate, a sharpness gap between training faces and real faces.

The FER2013 image-folder copy in ``../shared/data`` has every *training* face heavily blurred
(median Laplacian variance ~6) while PublicTest/PrivateTest faces are sharp (~2,150) — and so are the
faces a camera delivers. A model trained on the blurred faces scores below chance on sharp ones.
Nothing can restore the lost detail, but the gap can be closed from the other side: low-pass every
non-training input with the Gaussian that makes its sharpness match the training faces'. That sigma
is stored in the bundle's preprocessing (``blur_sigma``), so evaluation, conversion and the runtime
all apply the same filter (one source of truth, no train/serve skew).
"""

from __future__ import annotations

import numpy as np

# a training set this much less sharp than the validation set is treated as degraded
GAP_RATIO = 0.25


def laplacian_variance(faces: np.ndarray, limit: int = 2000, seed: int = 0) -> float:
    """Median over faces (uint8 (N, H, W)) of the variance of the Laplacian: a standard sharpness score."""
    import cv2

    if len(faces) > limit:
        faces = faces[np.random.default_rng(seed).choice(len(faces), limit, replace=False)]
    return float(np.median([cv2.Laplacian(f, cv2.CV_32F).var() for f in faces]))


def gaussian_blur(faces: np.ndarray, sigma: float) -> np.ndarray:
    from edge_fer.preprocess import blur

    return blur(faces, sigma)


def match_sigma(sharp: np.ndarray, target: float, lo: float = 0.0, hi: float = 8.0, steps: int = 20) -> float:
    """The Gaussian sigma that brings ``sharp`` faces' median Laplacian variance down to ``target``
    (bisection; the score decreases monotonically with sigma)."""
    sample = sharp[:1000]
    if laplacian_variance(sample) <= target:
        return 0.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        if laplacian_variance(gaussian_blur(sample, mid)) > target:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 2)


def assess(train: np.ndarray, val: np.ndarray) -> dict:
    """Sharpness of both splits and, when training faces are much blurrier, the matching sigma."""
    t, v = laplacian_variance(train), laplacian_variance(val)
    degraded = v > 0 and t / v < GAP_RATIO
    sigma = match_sigma(val, t) if degraded else 0.0
    out = {
        "train_laplacian_var": round(t, 2),
        "val_laplacian_var": round(v, 2),
        "degraded": bool(degraded),
        "blur_sigma": sigma,
    }
    if degraded:
        out["val_laplacian_var_after_blur"] = round(laplacian_variance(gaussian_blur(val, sigma)), 2)
    return out
