"""Face detectors behind one protocol, chosen by name.

Adding a detector is one new module plus one line in :data:`DETECTORS`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from edge_fer import plugins
from edge_fer.types import Face


@runtime_checkable
class Detector(Protocol):
    name: str
    # optional attribute ``wants_gray = True``: the pipeline then passes the gray frame

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a BGR (H,W,3) or gray (H,W) uint8 image, boxes in that image's pixels."""
        ...


# name -> "module:Class" (imported lazily)
DETECTORS: dict[str, str] = {
    "haar": "edge_fer.detect.haar:HaarDetector",
    "yunet": "edge_fer.detect.yunet:YuNetDetector",
    "auto": "edge_fer.detect.auto:AutoDetector",  # yunet when its model is installed, else haar
}


def detector_class(name: str) -> type:
    return plugins.load(DETECTORS, name, "detector")


def create_detector(name: str = "haar", full_every: int = 0, frame_gap: int = 1, **options: Any) -> Detector:
    """The detector ``name`` built with ``options``; with ``full_every`` N >= 1 it is wrapped in a
    :class:`~edge_fer.detect.roi.RoiDetector`: a full-frame pass every N frames, windows around the
    known faces between (``frame_gap``: frames between two calls, the pipeline's ``detector.every``)."""
    det = detector_class(name)(**options)
    if full_every and int(full_every) > 0:
        from edge_fer.detect.roi import RoiDetector

        det = RoiDetector(det, full_every=int(full_every), frame_gap=frame_gap)
    return det


def scale_box(box: tuple[float, float, float, float], f: float, width: int, height: int) -> tuple[int, int, int, int]:
    """A box found on an image downscaled by ``f`` -> full-frame ints, clipped to the frame."""
    x, y, w, h = (float(v) / f for v in box)
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


__all__ = ["Detector", "DETECTORS", "create_detector", "detector_class", "scale_box", "Face"]
