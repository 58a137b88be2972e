"""``detector.name = "auto"``: kept for configs written when the default was Haar. It is the default
detector now (YuNet, the shipped model; Haar where OpenCV has no ``cv2.FaceDetectorYN``), except that a
``model`` ending in ``.xml`` (a Haar cascade) picks the Haar detector. Nothing is ever downloaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_fer.detect import Detector
    from edge_fer.detect.options import DetectorConfig


class AutoDetector:
    """Not a detector itself: :meth:`from_config` picks YuNet or Haar (the registry's ``auto``)."""

    @staticmethod
    def from_config(cfg: DetectorConfig, **tuning: Any) -> Detector:
        if cfg.model.lower().endswith(".xml"):
            from edge_fer.detect.haar import HaarDetector

            return HaarDetector.from_config(cfg, **tuning)
        from edge_fer.detect.yunet import YuNetDetector

        return YuNetDetector.from_config(cfg, **tuning)
