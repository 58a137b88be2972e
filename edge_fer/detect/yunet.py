"""YuNet via ``cv2.FaceDetectorYN`` (``--detector yunet --detector-model face_detection_yunet.onnx``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_fer.detect import scale_box
from edge_fer.errors import ConfigError, ModelError
from edge_fer.types import Face


class YuNetDetector:
    """Runs on a BGR frame downscaled by ``scale``; boxes and landmarks scaled back."""

    name = "yunet"

    def __init__(
        self,
        model: str | None = None,
        scale: float = 0.5,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 50,
        min_size: int = 0,
        **_ignored,
    ):
        if not model:
            raise ConfigError("the yunet detector needs a model file: --detector-model face_detection_yunet.onnx")
        p = Path(model)
        if not p.is_file():
            raise ModelError(f"YuNet model {p} not found")
        if not (0.05 <= scale <= 1.0):
            raise ConfigError(f"detector scale {scale} must be in [0.05, 1]")
        try:
            self.net = cv2.FaceDetectorYN.create(str(p), "", (320, 320), float(score_threshold), float(nms_threshold), int(top_k))
        except Exception as e:  # cv2.error, or SystemError for some malformed files
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ModelError(f"cannot load YuNet model {p}: {msg}") from None
        self.scale = float(scale)
        self.min_size = int(min_size)
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> list[Face]:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        h, w = image.shape[:2]
        f = self.scale
        small = image if f == 1.0 else cv2.resize(image, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
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
            lm = (np.asarray(r[4:14], np.float32).reshape(5, 2) / f)
            faces.append(Face(box, float(r[14]), lm))
        return faces
