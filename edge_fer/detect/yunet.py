"""YuNet via ``cv2.FaceDetectorYN``: the default detector. Its model ships inside the package
(:func:`edge_fer.models.shipped_yunet`); ``edge-fer models pull yunet`` installs a copy in the user's
cache that is preferred (an update), and ``--detector-model FILE.onnx`` names another build.

Where this OpenCV has no ``cv2.FaceDetectorYN``, the default (no ``--detector-model``) falls back to the
Haar cascade and says so in one log line. A model file that is not a working YuNet graph is a
:class:`~edge_fer.errors.ModelError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge_fer import fsutil
from edge_fer.detect import Detector, WindowDetector, scale_box
from edge_fer.errors import MissingDependencyError, ModelError
from edge_fer.types import Face

if TYPE_CHECKING:
    from edge_fer.detect.options import DetectorConfig

log = logging.getLogger(__name__)


def has_yunet() -> bool:
    """Whether this OpenCV build has ``cv2.FaceDetectorYN`` (OpenCV 4.8+)."""
    return hasattr(cv2, "FaceDetectorYN")


def default_model() -> tuple[Path, str]:
    """(the YuNet model used when none is named, where it comes from): the copy pulled into the
    cache when there is one, else the one shipped in the package."""
    from edge_fer.models import shipped_yunet
    from edge_fer.models_store import installed_path

    pulled = installed_path("yunet")
    if pulled is not None:
        return pulled, "pulled"
    return shipped_yunet(), "shipped"


def check_model_file(p: Path, shipped: bool = False) -> None:
    """What is wrong with ``p`` as a YuNet model, as a :class:`ModelError` (before OpenCV reads it)."""
    what = "the shipped YuNet model" if shipped else "YuNet model (--detector-model)"
    fix = " (reinstall edge-fer, or 'edge-fer models pull yunet')" if shipped else ""
    fsutil.check_model_file(p, what, fix)  # a regular file of a sane size, from os.stat (a FIFO never blocks)
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise ModelError(f"{what} {p}: cannot read it ({e.strerror or e})") from None
    if not head:
        raise ModelError(f"{what} {p}: empty file{fix}")
    text = head.lstrip().lower()
    if text.startswith((b"<?xml", b"<opencv_storage")):
        kind = "a Haar cascade XML" if b"<opencv_storage" in head.lower() else "an XML file"
        raise ModelError(f"{what} {p}: {kind}, not a YuNet ONNX model (a cascade goes with --detector haar)")
    if head[:1] != b"\x08" or p.suffix.lower() != ".onnx":  # an ONNX ModelProto starts with ir_version
        raise ModelError(f"{what} {p}: not an ONNX model (YuNet needs its .onnx file){fix}")


def _cv_reason(e: BaseException, path: Path) -> str:
    """OpenCV's reason in a few words: ``OpenCV(4.x) file.cpp:N: error: (-210:...) Failed to parse
    ONNX model: P in function 'F'`` -> ``OpenCV: Failed to parse ONNX model``."""
    msg = str(e).strip()
    if not msg:
        return type(e).__name__
    m = re.search(r"error: \([-\d]+:[^)]*\) (.*?)(?: in function .*)?$", msg.splitlines()[-1])
    reason = (m.group(1) if m else msg.splitlines()[-1]).replace(str(path), "").rstrip(" :")
    return f"OpenCV: {reason}"


def load_net(p: Path, args: tuple[float, float, int], shipped: bool = False) -> cv2.FaceDetectorYN:
    """``cv2.FaceDetectorYN`` on the model file ``p`` (``args``: score threshold, NMS threshold, top
    k), run once on a blank image: a file that is not a working YuNet graph is a :class:`ModelError`
    naming it and what is wrong."""
    check_model_file(p, shipped)
    what = f"{'the shipped ' if shipped else ''}YuNet model {p}"
    try:
        net = cv2.FaceDetectorYN.create(str(p), "", (320, 320), *args)
    except Exception as e:  # cv2.error, or SystemError for some malformed files
        raise ModelError(f"{what}: damaged or truncated ONNX file ({_cv_reason(e, p)})") from None
    try:  # a readable ONNX graph that is not YuNet fails on its first frame: find out now
        net.setInputSize((32, 32))
        net.detect(np.zeros((32, 32, 3), np.uint8))
    except Exception as e:
        raise ModelError(f"{what}: not a YuNet face detector graph ({_cv_reason(e, p)})") from None
    return net


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` resized to ``width`` x ``height``, averaging the pixels as ``cv2.INTER_AREA`` does
    where it shrinks, at a fraction of its cost: OpenCV's area resize is fast only for whole-number
    factors (a 191 px window to 64 px took 0.15 ms, a third of the window network's time). So the
    image is first averaged down by the largest whole factor (its last rows and columns past a
    multiple of it dropped: fewer than the factor), then bilinearly by the remaining factor of 1-2."""
    h, w = image.shape[:2]
    k = min(w // max(1, width), h // max(1, height))
    if k >= 2:
        image = image[: h - h % k, : w - w % k]
        image = cv2.resize(image, (image.shape[1] // k, image.shape[0] // k), interpolation=cv2.INTER_AREA)
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


class YuNetDetector(WindowDetector):
    """Runs on a BGR frame downscaled by ``scale``; boxes and landmarks scaled back. ``model``,
    ``scale``, ``score_threshold`` and ``min_size`` as in ``[detector]``, checked there."""

    name = "yunet"
    # YuNet's boxes are tall (w/h ~0.76) and ~4% longer than FER2013's face squares: on PublicTest the
    # shipped model scored best with crops of 0.80x the box's longer side at the bundle's margin 0.05
    # (framing 0.68-0.92 and vertical shifts -0.03..+0.06 tried: benchmarks/crop_margin.py,
    # benchmarks/results/yunet_framing/, docs/detectors.md)
    framing = 0.80

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
        min_input: int = 320,
    ):
        if not has_yunet():
            raise MissingDependencyError(
                f"the yunet detector needs cv2.FaceDetectorYN (OpenCV 4.8+; this is OpenCV {cv2.__version__})",
                "pip install 'opencv-python-headless>=4.8,<5'",
            )
        args = (float(score_threshold), float(nms_threshold), int(top_k))
        if model:
            p = Path(model)
            self.net = load_net(p, args)
        else:
            p, origin = default_model()
            try:
                self.net = load_net(p, args, shipped=origin == "shipped")
            except ModelError as e:
                if origin != "pulled":
                    raise
                # a damaged update in the cache must not stop a camera that worked with the shipped model
                from edge_fer.models import shipped_yunet

                log.warning(
                    "%s; using the YuNet model shipped in the package ('edge-fer models pull yunet "
                    "--force' fetches the update again)",
                    e,
                )
                p = shipped_yunet()
                self.net = load_net(p, args, shipped=True)
        self.scale = float(scale)
        # ``scale`` never takes a frame's longer side below this (a 320 px camera is not halved: its
        # faces are small already); a frame smaller than this is used as it is
        self.min_input = int(min_input)
        self.min_size = int(min_size)
        self._size: tuple[int, int] | None = None
        self.model_path = str(p)
        self._args = args
        # window search (edge_fer.detect.roi): a second network at a fixed small input size, so the
        # full-frame network never has to be resized between the two kinds of pass
        self.roi_size = int(roi_size)
        self.roi_max_windows = int(roi_max_windows)  # more faces than this: a full pass is cheaper
        self._roi_net: cv2.FaceDetectorYN | None = None

    @classmethod
    def from_config(cls, cfg: DetectorConfig, **tuning) -> Detector:
        """YuNet; with no ``model`` named and no ``cv2.FaceDetectorYN`` in this OpenCV, the Haar
        detector instead (one log line says so)."""
        if not cfg.model and not has_yunet():
            from edge_fer.detect.haar import HaarDetector

            log.warning(
                "OpenCV %s has no cv2.FaceDetectorYN: using the Haar detector instead of YuNet "
                "(pip install 'opencv-python-headless>=4.8,<5' for YuNet)",
                cv2.__version__,
            )
            return HaarDetector.from_config(cfg)
        return cls(
            model=cfg.model or None,
            scale=cfg.scale,
            score_threshold=cfg.score_threshold,
            nms_threshold=cfg.nms_threshold,
            min_size=cfg.min_size,
            **tuning,
        )

    def detect(self, image: np.ndarray) -> list[Face]:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        h, w = image.shape[:2]
        f = max(self.scale, min(1.0, self.min_input / max(h, w, 1)))
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
        canvas[:ch, :cw] = shrink(crop, cw, ch)
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
