"""OpenCV's Haar cascades: the zero-download default detector (needs opencv-python-headless < 5).

The full-frame pass uses ``haarcascade_frontalface_alt2.xml`` (scaleFactor 1.1, minNeighbors 3): on the
hand-annotated frames of ``benchmarks/data/hamilton_faces.json`` it found 17 of 47 faces with no false
positive at half resolution, where ``haarcascade_frontalface_default.xml`` (scaleFactor 1.2,
minNeighbors 5, the earlier default) found 10 (``benchmarks/detection_recall.py``). The window search
(:meth:`HaarDetector.detect_roi`, used by :mod:`edge_fer.detect.roi`) tries the frontal cascade and,
when it finds nothing, ``haarcascade_profileface.xml`` on the window and on its mirror image, so a face
that turns away keeps being found.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge_fer.detect import WindowDetector, scale_box
from edge_fer.errors import MissingDependencyError, ModelError
from edge_fer.fsutil import check_model_file
from edge_fer.preprocess import to_gray
from edge_fer.types import Face

if TYPE_CHECKING:
    from edge_fer.detect.options import DetectorConfig

DEFAULT_CASCADE = "haarcascade_frontalface_alt2.xml"
PROFILE_CASCADE = "haarcascade_profileface.xml"
MIN_FACE = 30  # px: ``detector.min_size = 0`` means this for Haar (smaller windows: slow, and false faces)


def cascade_dir() -> Path:
    """The cascade XML files that come with OpenCV's wheels."""
    return Path(cv2.data.haarcascades)  # type: ignore[attr-defined]  # cv2.data is missing from OpenCV's stubs


class HaarDetector(WindowDetector):
    """Runs on a gray frame downscaled by ``scale``; boxes are scaled back to the frame.

    ``scale`` and ``min_size`` (full-frame pixels) as in ``[detector]``, checked there."""

    name = "haar"
    wants_gray = True  # the pipeline passes its one gray conversion

    def __init__(
        self,
        scale: float = 0.5,
        scale_factor: float = 1.1,
        min_neighbors: int = 3,
        min_size: int = 30,
        model: str | None = None,
        equalize: bool = False,
        roi_min_neighbors: int = 2,
        roi_face: int = 28,
        roi_profile: bool = True,
        roi_range: tuple[float, float] = (0.75, 1.33),
        roi_equalize: bool = False,
    ):
        if not hasattr(cv2, "CascadeClassifier"):
            raise MissingDependencyError(
                "the Haar detector needs OpenCV 4 (OpenCV 5 dropped the Haar cascades)",
                "pip install 'opencv-python-headless>=4.8,<5'",
            )
        path = Path(model) if model else cascade_dir() / DEFAULT_CASCADE
        check_model_file(
            path, "Haar cascade (--detector-model)" if model else "Haar cascade"
        )  # a regular file of a sane size (a FIFO would block OpenCV)
        try:  # OpenCV raises (cv2.error, or SystemError) on a file that is not a cascade XML
            self.cascade = cv2.CascadeClassifier(str(path))
        except Exception:
            raise ModelError(f"cannot load the Haar cascade {path}: not an OpenCV cascade XML") from None
        if self.cascade.empty():
            raise ModelError(f"cannot load the Haar cascade {path}: not an OpenCV cascade XML")
        self.model_path = str(path)
        self.scale, self.scale_factor, self.min_neighbors = float(scale), float(scale_factor), int(min_neighbors)
        self.min_size = int(min_size)
        self.equalize = equalize
        # window search (edge_fer.detect.roi): the face is rescaled to about roi_face px and only sizes
        # near its last one (roi_range) are tried, so fewer neighbours are needed to trust a hit; Haar's
        # cost concentrates on face-like windows, so a small, tight window is what makes it cheap
        self.roi_min_neighbors, self.roi_face = int(roi_min_neighbors), int(roi_face)
        self.roi_range = (float(roi_range[0]), float(roi_range[1]))
        self.roi_equalize = bool(roi_equalize)
        self.profile = None
        if roi_profile:
            pp = cascade_dir() / PROFILE_CASCADE
            self.profile = cv2.CascadeClassifier(str(pp)) if pp.is_file() else None

    @classmethod
    def from_config(cls, cfg: DetectorConfig, **tuning) -> HaarDetector:
        return cls(scale=cfg.scale, min_size=cfg.min_size or MIN_FACE, model=cfg.model or None, **tuning)

    def detect(self, image: np.ndarray) -> list[Face]:
        gray = to_gray(image)
        h, w = gray.shape[:2]
        f = self.scale
        small = (
            gray
            if f == 1.0
            else cv2.resize(gray, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
        )
        if self.equalize:
            small = cv2.equalizeHist(small)
        ms = max(8, int(round(self.min_size * f)))
        rects = self.cascade.detectMultiScale(
            small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(ms, ms)
        )
        return [Face(scale_box((rx, ry, rw, rh), f, w, h), 1.0) for rx, ry, rw, rh in (rects if len(rects) else [])]

    def detect_roi(
        self, image: np.ndarray, box: tuple[int, int, int, int], window: tuple[int, int, int, int]
    ) -> Face | None:
        """The face nearest ``box`` inside ``window`` (x0, y0, x1, y1), searched only at sizes from
        ``roi_range`` times ``box``'s side, on the window rescaled so that the face is ``roi_face`` px:
        the frontal cascade first, then the profile cascade both ways round."""
        from edge_fer.detect.roi import pick_nearest

        gray = to_gray(image)
        x0, y0, x1, y1 = window
        side = max(box[2], box[3], 1)
        f = min(2.0, self.roi_face / side)
        crop = gray[y0:y1, x0:x1]
        cw, ch = max(1, int(round((x1 - x0) * f))), max(1, int(round((y1 - y0) * f)))
        small = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        if self.equalize or self.roi_equalize:
            small = cv2.equalizeHist(small)
        s = side * f
        lo, hi = max(8, int(s * self.roi_range[0])), max(9, int(s * self.roi_range[1]) + 1)

        def search(cascade: cv2.CascadeClassifier, img: np.ndarray) -> list[Sequence[int]]:
            mn = self.roi_min_neighbors
            return list(
                cascade.detectMultiScale(img, scaleFactor=1.1, minNeighbors=mn, minSize=(lo, lo), maxSize=(hi, hi))
            )

        rects = search(self.cascade, small)
        if not rects and self.profile is not None:
            rects = search(self.profile, small)
            if not rects:
                rects = [(cw - rx - rw, ry, rw, rh) for rx, ry, rw, rh in search(self.profile, cv2.flip(small, 1))]
        if not rects:
            return None
        h, w = gray.shape[:2]
        faces = []
        for rx, ry, rw, rh in rects:
            bx, by, bw, bh = scale_box((rx, ry, rw, rh), f, w, h)  # window pixels -> full frame
            faces.append(Face(_clip((bx + x0, by + y0, bw, bh), w, h), 1.0))
        return pick_nearest(faces, box)


def _clip(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    x, y, w, h = box
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)
