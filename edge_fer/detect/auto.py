"""``detector.name = "auto"``: YuNet when its model is at hand, else Haar (nothing to download).

YuNet is used when ``model`` names an ``.onnx`` file or when ``edge-fer models pull yunet`` has
installed the model in the user's cache; otherwise the Haar cascade (``model`` is passed on only
when it is a cascade ``.xml``). The choice is logged once. Nothing is ever downloaded here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edge_fer.detect import Detector

if TYPE_CHECKING:
    from edge_fer.config import DetectorConfig

log = logging.getLogger(__name__)


class AutoDetector:
    """Not a detector itself: :meth:`from_config` picks YuNet or Haar (the registry's ``auto``)."""

    @staticmethod
    def from_config(cfg: DetectorConfig, **tuning: Any) -> Detector:
        from edge_fer.models_store import installed_path

        if cfg.model.lower().endswith(".onnx"):
            from edge_fer.detect.yunet import YuNetDetector

            return YuNetDetector.from_config(cfg, **tuning)
        if not cfg.model and installed_path("yunet") is not None:
            from edge_fer.detect.yunet import YuNetDetector

            det = YuNetDetector.from_config(cfg, **tuning)
            log.info("detector auto: yunet (%s)", det.model_path)
            return det
        from edge_fer.detect.haar import HaarDetector

        log.info("detector auto: haar (no YuNet model installed; 'edge-fer models pull yunet' fetches it)")
        return HaarDetector.from_config(cfg, **tuning)
