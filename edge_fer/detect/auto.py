"""``detector.name = "auto"``: YuNet when its model is at hand, else Haar (nothing to download).

YuNet is used when ``model`` names an ``.onnx`` file or when ``edge-fer models pull yunet`` has
installed the model in the user's cache; otherwise the Haar cascade (``model`` is passed on only
when it is a cascade ``.xml``). The choice is logged once. Nothing is ever downloaded here.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def AutoDetector(model: str | None = None, **options: Any):  # noqa: N802 - a factory registered like a class
    from edge_fer.models_store import installed_path

    if model and str(model).lower().endswith(".onnx"):
        from edge_fer.detect.yunet import YuNetDetector

        return YuNetDetector(model=model, **options)
    if not model and installed_path("yunet") is not None:
        from edge_fer.detect.yunet import YuNetDetector

        det = YuNetDetector(**options)
        log.info("detector auto: yunet (%s)", det.model_path)
        return det
    from edge_fer.detect.haar import HaarDetector

    log.info("detector auto: haar (no YuNet model installed; 'edge-fer models pull yunet' fetches it)")
    return HaarDetector(model=model or None, **options)
