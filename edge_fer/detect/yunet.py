"""YuNet via ``cv2.FaceDetectorYN``: ``--detector yunet`` after ``edge-fer models pull yunet`` (the
model then lives in the user's cache, :mod:`edge_fer.models_store`), or ``--detector-model FILE.onnx``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge_fer.detect import WindowDetector, scale_box
from edge_fer.errors import ConfigError, ModelError
from edge_fer.types import Face

if TYPE_CHECKING:
    from edge_fer.config import DetectorConfig


class YuNetDetector(WindowDetector):
    """Runs on a BGR frame downscaled by ``scale``; boxes and landmarks scaled back. ``model``,
    ``scale``, ``score_threshold`` and ``min_size`` as in ``[detector]``, checked there."""

    name = "yunet"
    # YuNet's boxes are tall (w/h ~0.76) and ~9% longer than Haar's square on FER2013 faces; on
    # PublicTest the shipped model scored best with YuNet crops ~0.92x the box height at the bundle's
    # margin 0.05 (benchmarks/crop_margin.py, docs/benchmarks.md, "Crop framing per detector")
    framing = 0.84

    def __init__(
        self,
        model: str | None = None,
        scale: float = 0.5,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 50,
        min_size: int = 0,
        roi_size: int = 64,
        roi_max_windows: int = 3,
    ):
        if not model:
            from edge_fer.models_store import installed_path

            found = installed_path("yunet")
            if found is None:
                raise ConfigError(
                    "the yunet detector needs its model: run 'edge-fer models pull yunet' once "
                    "(or 'edge-fer models pull yunet --from FILE' offline), or give --detector-model FILE.onnx"
                )
            model = str(found)
        p = Path(model)
        if not p.is_file():
            raise ModelError(f"YuNet model {p} not found")
        try:
            self.net = cv2.FaceDetectorYN.create(
                str(p), "", (320, 320), float(score_threshold), float(nms_threshold), int(top_k)
            )
        except Exception as e:  # cv2.error, or SystemError for some malformed files
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ModelError(f"cannot load YuNet model {p}: {msg}") from None
        self.scale = float(scale)
        self.min_size = int(min_size)
        self._size: tuple[int, int] | None = None
        self.model_path = str(p)
        self._args = (float(score_threshold), float(nms_threshold), int(top_k))
        # window search (edge_fer.detect.roi): a second network at a fixed small input size, so the
        # full-frame network never has to be resized between the two kinds of pass
        self.roi_size = int(roi_size)
        self.roi_max_windows = int(roi_max_windows)  # more faces than this: a full pass is cheaper
        self._roi_net: cv2.FaceDetectorYN | None = None

    @classmethod
    def from_config(cls, cfg: DetectorConfig, **tuning) -> YuNetDetector:
        return cls(
            model=cfg.model or None,
            scale=cfg.scale,
            score_threshold=cfg.score_threshold,
            min_size=cfg.min_size,
            **tuning,
        )

    def detect(self, image: np.ndarray) -> list[Face]:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        h, w = image.shape[:2]
        f = self.scale
        small = (
            image
            if f == 1.0
            else cv2.resize(image, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
        )
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self.net.setInputSize(size)
            self._size = size
        _, rows = self.net.detect(small)
        faces: list[Face] = []
        if rows is None:
            return faces
        for r in rows:
            box = scale_box((r[0], r[1], r[2], r[3]), f, w, h)
            if min(box[2], box[3]) < self.min_size:
                continue
            lm = np.asarray(r[4:14], np.float32).reshape(5, 2) / f
            faces.append(Face(box, float(r[14]), lm))
        return faces

    def detect_roi(
        self, image: np.ndarray, box: tuple[int, int, int, int], window: tuple[int, int, int, int]
    ) -> Face | None:
        """The face nearest ``box`` inside ``window`` (x0, y0, x1, y1): the window, padded to a
        square, runs through a ``roi_size`` x ``roi_size`` network."""
        from edge_fer.detect.roi import pick_nearest

        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        h, w = image.shape[:2]
        x0, y0, x1, y1 = window
        side = max(x1 - x0, y1 - y0)
        S = self.roi_size
        f = S / side
        crop = image[y0:y1, x0:x1]
        cw, ch = max(1, min(S, int(round((x1 - x0) * f)))), max(1, min(S, int(round((y1 - y0) * f))))
        canvas = np.zeros((S, S, 3), np.uint8)
        canvas[:ch, :cw] = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        if self._roi_net is None:
            self._roi_net = cv2.FaceDetectorYN.create(self.model_path, "", (S, S), *self._args)
        _, rows = self._roi_net.detect(canvas)
        if rows is None:
            return None
        faces = []
        for r in rows:
            bx, by = r[0] / f + x0, r[1] / f + y0
            bw, bh = r[2] / f, r[3] / f
            fx0, fy0 = max(0, int(round(bx))), max(0, int(round(by)))
            fx1, fy1 = min(w, int(round(bx + bw))), min(h, int(round(by + bh)))
            if fx1 - fx0 < max(1, self.min_size) or fy1 - fy0 < 1:
                continue
            lm = np.asarray(r[4:14], np.float32).reshape(5, 2) / f + np.array([x0, y0], np.float32)
            faces.append(Face((fx0, fy0, fx1 - fx0, fy1 - fy0), float(r[14]), lm))
        return pick_nearest(faces, box)
