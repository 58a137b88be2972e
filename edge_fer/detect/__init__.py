"""Face detectors behind one base class, chosen by name.

Adding a detector is one new module (a :class:`Detector` subclass with a ``from_config``) plus one
line in :data:`DETECTORS`. Its options come from the run config's ``[detector]`` section
(:class:`~edge_fer.detect.options.DetectorConfig`, which :mod:`edge_fer.config` uses), validated there once; a detector trusts them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from edge_fer import plugins
from edge_fer.detect.options import DEFAULT_DETECTOR, DETECTORS, DetectorConfig

if TYPE_CHECKING:
    import numpy as np

    from edge_fer.types import Face


class Detector(ABC):
    """Finds faces in one image."""

    name: str = "detector"
    wants_gray: bool = False  # True: the pipeline passes its one gray conversion of the frame
    # the side of the square the classifier's crop is cut around, as a share of the box's longer side:
    # each detector draws a face's box differently, the models are trained on one framing (Haar's
    # square brow-to-chin box widened by the bundle's margin is the reference: 1.0); measured with
    # benchmarks/crop_margin.py on the selection split
    framing: float = 1.0
    # ... and moved down by this share of its side (YuNet's boxes sit higher on the face than Haar's)
    shift: float = 0.0

    def crop_box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """The box the classifier's crop is cut around (before the bundle's margin): ``box``, or for a
        detector whose boxes frame faces differently from Haar's, the square of side ``framing`` x the
        longer side on the same centre, moved down by ``shift`` x that side. Events, tracking and
        drawings keep the detector's own box."""
        if self.framing == 1.0 and self.shift == 0.0:
            return box
        x, y, w, h = box
        side = max(1, int(round(max(w, h) * self.framing)))
        cx, cy = x + w / 2.0, y + h / 2.0 + self.shift * side
        return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side, side

    @classmethod
    def from_config(cls, cfg: DetectorConfig, **tuning: Any) -> Detector:
        """The detector the ``[detector]`` section asks for; ``tuning``: constructor options that are
        not config keys (benchmarks)."""
        raise NotImplementedError

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a BGR (H,W,3) or gray (H,W) uint8 image, boxes in that image's pixels."""


class WindowDetector(Detector):
    """A detector that can also search a small window around a known face
    (:class:`~edge_fer.detect.roi.RoiDetector` uses it between full-frame passes)."""

    roi_max_windows: int = 8  # more known faces than this: one full pass costs less than their windows

    @abstractmethod
    def detect_roi(
        self, image: np.ndarray, box: tuple[int, int, int, int], window: tuple[int, int, int, int]
    ) -> Face | None:
        """The face nearest ``box`` inside ``window`` (x0, y0, x1, y1), or None."""


def detector_class(name: str) -> Any:
    """The class registered for ``name`` (anything with ``from_config``: ``auto`` picks one)."""
    return plugins.load(DETECTORS, name, "detector")


def build_detector(cfg: DetectorConfig, *, windows: bool = True, stride: int = 1, **tuning: Any) -> Detector:
    """The detector of a (validated) ``[detector]`` section. With ``full_every`` N >= 1 (and
    ``windows``) it is wrapped in a :class:`~edge_fer.detect.roi.RoiDetector`: a full-frame pass every
    N frames, windows around the known faces between (``every``: frames between two calls; ``stride``:
    source frames per processed frame, ``edge-fer analyze --every``)."""
    det = detector_class(cfg.name).from_config(cfg, **tuning)
    if windows and cfg.full_every > 0:
        from edge_fer.detect.roi import RoiDetector

        det = RoiDetector(det, full_every=cfg.full_every, frame_gap=cfg.every * max(1, stride))
    return det


def create_detector(name: str = DEFAULT_DETECTOR, full_every: int = 0, frame_gap: int = 1, **options: Any) -> Detector:
    """The detector ``name`` for library use: ``options`` are ``[detector]`` keys (``model``, ``scale``,
    ``min_size``, ``score_threshold``, ``nms_threshold``), checked against their ranges, and the detector's own tuning
    options; ``full_every``/``frame_gap`` as ``detector.full_every``/``detector.every`` (no window
    search unless asked)."""
    from edge_fer import schema

    detector_class(name)  # an unknown name is one clear error listing the choices
    keys = {f.name for f in fields(DetectorConfig)}
    given = {k: options.pop(k) for k in list(options) if k in keys}
    if given.get("model") is None:
        given.pop("model", None)
    cfg = DetectorConfig(name=name, full_every=int(full_every), every=int(frame_gap), **given)
    return build_detector(schema.check(cfg, "detector."), **options)


def scale_box(box: tuple[float, float, float, float], f: float, width: int, height: int) -> tuple[int, int, int, int]:
    """A box found on an image downscaled by ``f`` -> full-frame ints, clipped to the frame."""
    x, y, w, h = (float(v) / f for v in box)
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


__all__ = [
    "Detector",
    "WindowDetector",
    "DETECTORS",
    "DEFAULT_DETECTOR",
    "DetectorConfig",
    "build_detector",
    "create_detector",
    "detector_class",
    "scale_box",
]
