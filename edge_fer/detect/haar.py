"""OpenCV's Haar cascade: the zero-download default detector (needs opencv-python-headless < 5)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_fer.detect import scale_box
from edge_fer.errors import ConfigError, MissingExtraError, ModelError
from edge_fer.preprocess import to_gray
from edge_fer.types import Face

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


class HaarDetector:
    """Runs on a gray frame downscaled by ``scale``; boxes are scaled back to the frame.

    ``min_size`` is in full-frame pixels."""

    name = "haar"
    wants_gray = True  # the pipeline passes its one gray conversion

    def __init__(
        self,
        scale: float = 0.5,
        scale_factor: float = 1.2,
        min_neighbors: int = 5,
        min_size: int = 30,
        model: str | None = None,
        equalize: bool = False,
        **_ignored,
    ):
        if not (0.05 <= scale <= 1.0):
            raise ConfigError(f"detector scale {scale} must be in [0.05, 1]")
        if not hasattr(cv2, "CascadeClassifier"):
            raise MissingExtraError("the Haar detector", "default", "opencv-python-headless<5 (OpenCV 5 has no Haar)")
        path = Path(model) if model else Path(cv2.data.haarcascades) / DEFAULT_CASCADE
        if not path.is_file():
            raise ModelError(f"Haar cascade {path}: no such file")
        try:  # OpenCV raises (cv2.error, or SystemError) on a file that is not a cascade XML
            self.cascade = cv2.CascadeClassifier(str(path))
        except Exception:
            raise ModelError(f"cannot load the Haar cascade {path}: not an OpenCV cascade XML") from None
        if self.cascade.empty():
            raise ModelError(f"cannot load the Haar cascade {path}: not an OpenCV cascade XML")
        self.scale, self.scale_factor, self.min_neighbors = float(scale), float(scale_factor), int(min_neighbors)
        self.min_size = int(min_size)
        self.equalize = equalize

    def detect(self, image: np.ndarray) -> list[Face]:
        gray = to_gray(image)
        h, w = gray.shape[:2]
        f = self.scale
        small = gray if f == 1.0 else cv2.resize(gray, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
        if self.equalize:
            small = cv2.equalizeHist(small)
        ms = max(8, int(round(self.min_size * f)))
        rects = self.cascade.detectMultiScale(
            small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(ms, ms)
        )
        return [Face(scale_box(tuple(r), f, w, h), 1.0) for r in (rects if len(rects) else [])]
