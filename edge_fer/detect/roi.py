"""Detect where the faces are: a full-frame pass every N frames, windows around known faces between.

:class:`RoiDetector` wraps any :class:`~edge_fer.detect.WindowDetector`, which also offers
``detect_roi(image, box, window)`` (the best face near ``box``, searched only at that face's own scale inside a window around it: Haar and YuNet both
do). On frame 0 and then every N frames the inner detector scans the whole frame (newcomers appear there); on
the frames between, each face found on the previous frame is looked for again in its window only,
which costs a fraction of a full pass. A face that its window loses is searched again for
``patience`` more frames (wider window), then dropped until the next full pass finds it.

A full pass also comes early on a new shot: when a coarse grid of pixels (32 x 18 samples) changed
by more than ``cut_threshold`` grey levels on average since the previous frame (a cut, a jump of the
camera), the known faces are stale, and the full pass finds the new ones at once instead of up to N
frames late. The count to the next scheduled pass starts again after every full pass.

On a full-pass frame the known faces that the full pass missed are looked for in their windows
too, so a detector that flickers (Haar on a turning head) keeps the face.

Each returned face was found in this frame's pixels: nothing is carried over or extrapolated (the
tracker does that, with ``detector.every``). Frames are numbered by the calls to :meth:`detect`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from edge_fer.boxes import iou
from edge_fer.detect import Detector, WindowDetector
from edge_fer.errors import ConfigError
from edge_fer.types import Face, int_box


def roi_window(box: tuple[int, int, int, int], margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """A square window centred on ``box``, ``1 + 2*margin`` times its larger side, clipped to the
    frame: (x0, y0, x1, y1)."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(width, int(cx + side / 2 + 0.5)), min(height, int(cy + side / 2 + 0.5))
    return x0, y0, x1, y1


def pick_nearest(faces: list[Face], box: tuple[int, int, int, int]) -> Face | None:
    """The face whose centre is nearest ``box``'s centre (ties: the higher score)."""
    if not faces:
        return None
    cx, cy = box[0] + box[2] / 2.0, box[1] + box[3] / 2.0

    def key(f: Face) -> tuple[float, float]:
        fx, fy = f.box[0] + f.box[2] / 2.0, f.box[1] + f.box[3] / 2.0
        return (float(np.hypot(fx - cx, fy - cy)), -f.score)

    return min(faces, key=key)


@contextlib.contextmanager
def one_opencv_thread() -> Iterator[None]:
    """OpenCV on one thread inside, its previous thread count after. A window is so small (YuNet's
    64 x 64 input) that OpenCV's thread pool gains nothing on it and loses when the other core is
    busy: on 2 cores the window network took 0.44 ms on one thread in every round, 0.41-0.93 ms
    (median 0.48) on two, while the full-frame pass gains from them (2.6 ms against 3.2). The count
    is process-wide and costs well under a microsecond to set (``benchmarks/opencv_threads.py``,
    ``benchmarks/results/opencv_threads/``)."""
    n = cv2.getNumThreads()
    if n <= 1:
        yield
        return
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(n)


@dataclass
class _Known:
    box: tuple[int, int, int, int]
    misses: int = 0


class RoiDetector(Detector):
    """``inner`` on the full frame every ``full_every`` frames; between, ``inner.detect_roi`` in a
    window (``margin`` of the face's side on each side) around each face of the previous frame.

    ``patience``: calls a lost face is still searched for (its window widened) before it is
    dropped. ``full_every=1`` is a full pass on every frame (plus the windows of faces it missed).
    ``frame_gap``: frames between two calls (the pipeline's ``detector.every``): ``full_every`` still
    counts frames, and windows grow with the gap, since faces move further between calls.
    ``cut_threshold``: mean change of the coarse pixel grid (0-255) taken as a new shot, which brings
    the next full pass forward to this frame (0: never)."""

    def __init__(
        self,
        inner: Detector,
        full_every: int = 12,
        margin: float = 0.4,
        patience: int = 2,
        frame_gap: int = 1,
        cut_threshold: float = 20.0,
    ):
        if not isinstance(inner, WindowDetector):
            raise ConfigError(f"the {inner.name} detector cannot search windows (no detect_roi)")
        if int(full_every) < 1:
            raise ConfigError(f"full_every must be >= 1, got {full_every}")
        gap = max(1, int(frame_gap))
        full_every = max(1, -(-int(full_every) // gap))  # in calls: ceil(frames / gap)
        margin = float(margin) * (1 + (gap - 1) / 2)
        self.inner = inner
        self.name = f"{inner.name}+roi"
        self.wants_gray = inner.wants_gray
        self.framing, self.shift = inner.framing, inner.shift  # crops are framed as the inner detector's boxes need
        self.full_every = int(full_every)
        self.margin = float(margin)
        self.patience = int(patience)
        # more known faces than this: one full pass costs less than their windows (the inner detector says)
        self.max_windows = inner.roi_max_windows
        self.known: list[_Known] = []
        self.frames = 0
        self.full_passes = 0
        self.cut_threshold = float(cut_threshold)
        self._since_full = 0  # calls since the last full pass
        self._grid: np.ndarray | None = None  # the previous frame's coarse pixel grid

    def _new_shot(self, image: np.ndarray) -> bool:
        """Whether ``image`` starts a new shot: its coarse pixel grid (every 1/32 of the width and
        1/18 of the height, a few thousand values, read without copying the frame) differs from the
        previous frame's by more than ``cut_threshold`` on average."""
        if self.cut_threshold <= 0:
            return False
        h, w = image.shape[:2]
        sy, sx = max(1, h // 18), max(1, w // 32)
        grid = image[sy // 2 :: sy, sx // 2 :: sx].astype(np.int16)
        prev, self._grid = self._grid, grid
        if prev is None or prev.shape != grid.shape:
            return False
        return float(np.abs(grid - prev).mean()) > self.cut_threshold

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        cut = self._new_shot(image)
        full = self.frames == 0 or self._since_full >= self.full_every or cut or len(self.known) > self.max_windows
        self.frames += 1
        self._since_full = 1 if full else self._since_full + 1
        found: list[Face] = []
        if full:
            self.full_passes += 1
            found = list(self.inner.detect(image))
        kept: list[_Known] = []
        with one_opencv_thread():
            for k in self.known:
                if any(iou(k.box, f.box) > 0.3 for f in found):
                    continue  # the full pass has it
                x0, y0, x1, y1 = roi_window(k.box, self.margin * (1 + k.misses), w, h)
                face = self.inner.detect_roi(image, k.box, (x0, y0, x1, y1)) if x1 - x0 >= 8 and y1 - y0 >= 8 else None
                if face is not None and not any(iou(face.box, f.box) > 0.3 for f in found):
                    found.append(face)
                elif face is None and k.misses < self.patience:
                    kept.append(_Known(k.box, k.misses + 1))
        self.known = [_Known(int_box(f.box)) for f in found] + [
            k for k in kept if not any(iou(k.box, f.box) > 0.3 for f in found)
        ]
        return found
