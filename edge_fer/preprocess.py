"""Face crop -> model input, as pure functions.

The steps mirror training exactly (the bundle's :class:`~edge_fer.bundle.Preprocessing` is the one
source of truth): gray image -> square crop of the box widened by ``margin`` (padded, never
stretched, where it leaves the frame) -> resize with the bundle's method -> ``pixel*scale+offset``
-> quantize to the interpreter's input dtype with its (scale, zero_point).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge_fer.bundle import Preprocessing

INTERPOLATION = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "cubic": cv2.INTER_CUBIC,
}


@dataclass(frozen=True)
class InputSpec:
    """What the model's input tensor wants: (H, W, C), dtype and quantization (scale, zero_point)."""

    height: int
    width: int
    channels: int
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0


def to_gray(image: np.ndarray) -> np.ndarray:
    """A 2-D uint8 gray view of a BGR or gray image (no copy when already gray)."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def square_box(box: Sequence[int], margin: float) -> tuple[int, int, int, int]:
    """The square (x0, y0, x1, y1) around ``box`` (x, y, w, h), side ``max(w,h)*(1+2*margin)``.

    It may extend beyond the frame; :func:`crop_square` pads that part."""
    x, y, w, h = (float(v) for v in box)
    side = max(1, int(round(max(w, h) * (1.0 + 2.0 * margin))))
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    return x0, y0, x0 + side, y0 + side


def crop_square(gray: np.ndarray, box: Sequence[int], margin: float) -> np.ndarray:
    """A square crop (side, side) of ``gray``; parts outside the frame are edge-replicated.

    The aspect ratio is always 1:1, so faces at the border are never stretched."""
    fh, fw = gray.shape[:2]
    x0, y0, x1, y1 = square_box(box, margin)
    side = x1 - x0
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(fw, x1), min(fh, y1)
    if cx1 <= cx0 or cy1 <= cy0:  # wholly outside the frame
        return np.zeros((side, side), np.uint8)
    inner = gray[cy0:cy1, cx0:cx1]
    if (cx0, cy0, cx1, cy1) == (x0, y0, x1, y1):
        return inner
    return cv2.copyMakeBorder(inner, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1, cv2.BORDER_REPLICATE)


def resize(crop: np.ndarray, width: int, height: int, method: str = "area") -> np.ndarray:
    if crop.shape[1] == width and crop.shape[0] == height:
        return crop
    interp = INTERPOLATION[method]
    if method == "area" and (crop.shape[1] < width or crop.shape[0] < height):
        interp = cv2.INTER_LINEAR  # INTER_AREA upsampling is nearest-like; OpenCV uses linear there too
    return cv2.resize(crop, (width, height), interpolation=interp)


def normalize(pixels: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """``pixel * scale + offset`` as float32."""
    return pixels.astype(np.float32) * np.float32(scale) + np.float32(offset)


def quantize(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """Float model input -> the input tensor's dtype (identity for float inputs)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return x.astype(dtype, copy=False)
    if not scale:
        raise ValueError(f"{dtype} input without quantization parameters")
    info = np.iinfo(dtype)
    q = np.round(x / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def face_crops(
    gray: np.ndarray, boxes: Sequence[Sequence[int]], pre: Preprocessing, width: int, height: int
) -> list[np.ndarray]:
    """Resized uint8 gray crops (height, width), one per box."""
    return [resize(crop_square(gray, b, pre.margin), width, height, pre.resize) for b in boxes]


def blur(crops: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of uint8 crops (N, H, W) with ``sigma`` pixels (identity for 0): the
    bundle's ``blur_sigma``, matching field faces to blurry training faces."""
    if sigma <= 0:
        return crops
    import cv2

    return np.stack([cv2.GaussianBlur(c, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for c in crops])


def to_model_input(crops: Sequence[np.ndarray], pre: Preprocessing, spec: InputSpec) -> np.ndarray:
    """Stack resized uint8 crops into the model's input batch (N, H, W, C) of ``spec.dtype``."""
    if not len(crops):
        return np.zeros((0, spec.height, spec.width, spec.channels), spec.dtype)
    batch = blur(np.stack(crops), pre.blur_sigma)[..., None]  # (N, H, W, 1)
    if spec.channels == 3:
        batch = np.repeat(batch, 3, axis=-1)
    return quantize(normalize(batch, pre.scale, pre.offset), spec.dtype, spec.scale, spec.zero_point)


def prepare_batch(gray: np.ndarray, boxes: Sequence[Sequence[int]], pre: Preprocessing, spec: InputSpec) -> np.ndarray:
    """Frame + boxes -> input batch in one call."""
    return to_model_input(face_crops(gray, boxes, pre, spec.width, spec.height), pre, spec)
