"""The two image transforms the autoencoder benchmarks use (seeded, documented, deterministic).

``corrupt(x, seed)`` — *camera-like corruption*, a different random severity per face (for selective
prediction: some faces barely touched, some ruined), applied in this order:

1. downscale to a factor f ~ U(0.25, 1) of the side (INTER_AREA) and upscale back (INTER_LINEAR);
2. gamma g = 2 ** U(-1, 1) (``out = 255 * (in / 255) ** g``: 0.5 brightens, 2 darkens);
3. Gaussian noise, sigma ~ U(0, 20) grey levels;
4. JPEG re-encoding at quality ~ U(10, 95) (integer);
5. with probability 0.5 a partial occlusion: one rectangle of 15-35 % of the image area, filled with a
   random flat grey (0-255), at a random position.

``camera_shift(x, seed)`` — *a new camera*, the same fixed transform for every face (only the noise is
random): downscale to half the side and back (a soft lens / a lower-resolution sensor), gamma 1.6
(a darker, contrastier tone curve), Gaussian noise sigma 8 (a small sensor), JPEG quality 25
(a compressed stream).
"""

from __future__ import annotations

import cv2
import numpy as np


def _down_up(img: np.ndarray, f: float) -> np.ndarray:
    h, w = img.shape
    s = (max(2, int(round(w * f))), max(2, int(round(h * f))))
    return cv2.resize(cv2.resize(img, s, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_LINEAR)


def _gamma(img: np.ndarray, g: float) -> np.ndarray:
    return np.clip(255.0 * (img.astype(np.float32) / 255.0) ** g, 0, 255).astype(np.uint8)


def _noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img.astype(np.float32) + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def corrupt(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Camera-like corruption of random severity per face; ``x`` (N, H, W) uint8."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(x)
    for i, img in enumerate(x):
        y = _down_up(img, rng.uniform(0.25, 1.0))
        y = _gamma(y, 2.0 ** rng.uniform(-1, 1))
        y = _noise(y, rng.uniform(0, 20), rng)
        y = _jpeg(y, int(rng.integers(10, 96)))
        if rng.random() < 0.5:
            h, w = y.shape
            area = rng.uniform(0.15, 0.35) * h * w
            aspect = rng.uniform(0.5, 2.0)
            rh = int(min(h, round(np.sqrt(area * aspect))))
            rw = int(min(w, round(area / max(rh, 1))))
            r0, c0 = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
            y = y.copy()
            y[r0 : r0 + rh, c0 : c0 + rw] = int(rng.integers(0, 256))
        out[i] = y
    return out


def camera_shift(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The fixed 'new camera' transform; ``x`` (N, H, W) uint8."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(x)
    for i, img in enumerate(x):
        out[i] = _jpeg(_noise(_gamma(_down_up(img, 0.5), 1.6), 8.0, rng), 25)
    return out
