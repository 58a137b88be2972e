"""The detector registry and the ``[detector]`` section of the run config.

Both live here, below :mod:`edge_fer.config` and the detectors alike: :mod:`edge_fer.config` takes
:class:`DetectorConfig` from here, and the detectors take it from here too, so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_fer.schema import opt

# name -> "module:Class" (imported lazily, edge_fer.plugins)
DETECTORS: dict[str, str] = {
    "yunet": "edge_fer.detect.yunet:YuNetDetector",
    "haar": "edge_fer.detect.haar:HaarDetector",
    "auto": "edge_fer.detect.auto:AutoDetector",  # yunet, or haar where this OpenCV has no FaceDetectorYN
}

DEFAULT_DETECTOR = "yunet"


@dataclass
class DetectorConfig:
    """The face detector's options. The defaults are YuNet's, chosen on the annotated frames of
    ``benchmarks/data/hamilton_faces.json`` (``benchmarks/detector_grid.py``, ``docs/detectors.md``)."""

    name: str = opt(
        DEFAULT_DETECTOR,
        choices=tuple(DETECTORS),
        flag="--detector",
        help="Face detector: yunet (the shipped YuNet model; Haar where OpenCV lacks FaceDetectorYN), "
        "haar (OpenCV's cascade), or auto (the same as yunet).",
    )
    model: str = opt(
        "",
        flag="--detector-model",
        help="The detector's model file: a YuNet .onnx (default: the shipped one, or a newer one from "
        "'edge-fer models pull yunet'), or a Haar cascade XML with --detector haar.",
    )
    every: int = opt(
        1,
        lo=1,
        hi=1000,
        flag="--detect-every",
        help="Detect faces every N frames; the tracker carries them in between.",
    )
    # between full-frame passes a search only in a window around each face found by the previous
    # detection (edge_fer.detect.roi)
    full_every: int = opt(
        8,
        lo=0,
        hi=1000,
        flag="--full-every",
        help="A full-frame detection every N frames (and at once on a new shot), between them only a "
        "window around each known face (0: full frame every time).",
    )
    scale: float = opt(0.5, lo=0.05, hi=1.0, flag="--detect-scale", help="Downscale factor of the frame for detection.")
    min_size: int = opt(
        0,
        lo=0,
        hi=10000,
        flag="--min-face",
        help="Smallest face side in (full-frame) pixels (0: the detector's own: YuNet none, Haar 30).",
    )
    score_threshold: float = opt(0.6, lo=0.0, hi=1.0, help="YuNet's minimum face score.")
    nms_threshold: float = opt(0.3, lo=0.0, hi=1.0, help="YuNet's non-maximum suppression IoU.")
