"""Files shipped inside the package: the default expression model (``default_int8.tflite``, its card
``MODEL_CARD.md``) and the default face detector, YuNet (``face_detection_yunet_2023mar.onnx``, Shiqi Yu
et al., Apache-2.0: its licence text is ``face_detection_yunet_2023mar.LICENSE.txt``; see ``NOTICE``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

YUNET_FILE = "face_detection_yunet_2023mar.onnx"
# the official release (OpenCV Zoo / ShiqiYu/libfacedetection.train onnx/yunet_s_640_640.onnx); the
# same pin as edge_fer.models_store.KNOWN["yunet"]
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
YUNET_SIZE = 232_589


def shipped(name: str) -> Path:
    """The path of a file shipped in this package (it may be missing in a broken install)."""
    return Path(str(resources.files(__name__).joinpath(name)))


def shipped_yunet() -> Path:
    """The YuNet model shipped in the package."""
    return shipped(YUNET_FILE)


def display_path(path: str | Path | None) -> str | None:
    """A model's path for a report: a file shipped in the package as ``edge_fer/models/NAME`` (the
    same on every machine, and no home folder in a shared result file); any other as given."""
    if path is None:
        return None
    try:
        rel = Path(path).resolve().relative_to(Path(__file__).resolve().parent)
    except (OSError, ValueError):
        return str(path)
    return f"edge_fer/models/{rel.as_posix()}"


__all__ = ["YUNET_FILE", "YUNET_SHA256", "YUNET_SIZE", "display_path", "shipped", "shipped_yunet"]
