"""The annotated video (``--annotate``): each frame with its face boxes, track ids and labels.

Written only when the user asks (privacy). A restart never erases an earlier video: without
``--overwrite`` an existing file makes it write the next free name (``ann.1.mp4``).

OpenCV's video writer reports no write error (a full disk leaves an unplayable file and FFmpeg
warnings on stderr), so the file is watched instead: every :attr:`Annotator.check_every` frames its
size must have grown over the last :attr:`Annotator.stall_checks` checks, and at the end the finished
file is opened again and must hold the frames written. A failure is logged (once, then at most every
10 s) and counted in ``errors``, and the run ends with exit code 74 after it has finished.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_fer.fsutil import opencv_path, probe_folder
from edge_fer.types import Frame

if TYPE_CHECKING:
    import cv2

log = logging.getLogger(__name__)


def _free_name(path: Path) -> Path:
    """``path`` when it is free or empty, else the first free ``stem.N.suffix`` (logged)."""
    p, n = path, 0
    while p.exists() and (not p.is_file() or p.stat().st_size > 0):
        n += 1
        p = path.with_name(f"{path.stem}.{n}{path.suffix}")
    if p != path:
        log.info("%s exists: writing %s instead (--overwrite replaces it)", path, p)
    return p


def draw_faces(img: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], captions: Sequence[str]) -> None:
    """Draw each box and its caption (``#3 happy``) on the BGR image ``img``, in place: the annotated
    video and the live preview (:mod:`edge_fer.sinks.preview`)."""
    import cv2

    for (x, y, w, h), text in zip(boxes, captions):
        cv2.rectangle(img, (x, y), (x + w, y + h), (0, 255, 0), 2)
        cv2.putText(img, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1, cv2.LINE_AA)


#: the containers OpenCV's writer makes with the ``mp4v`` codec
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi")


def check_target(path: str | Path) -> None:
    """Before the first frame: ``path`` must name a video file (a known container) in a folder that
    can be written. A mistake is a :class:`~edge_fer.errors.ConfigError` (exit 2); found only at the
    end, it cost a whole run without its video."""
    from edge_fer.errors import ConfigError

    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"--annotate {path} is a folder; name a video file (e.g. {p / 'annotated.mp4'})")
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        what = f"'{p.suffix}'" if p.suffix else "no extension"
        raise ConfigError(
            f"--annotate {path}: {what} is not a video container it can write; use one of {', '.join(VIDEO_SUFFIXES)}"
        )

    try:
        probe_folder(p.parent)
    except OSError as e:
        raise ConfigError(f"--annotate {path}: cannot write there ({e.strerror or e})") from None


class Annotator:
    """Writes an annotated video (boxes, track ids, labels). Only when the user asks (--annotate)."""

    def __init__(self, path: str | Path, fps: float = 15.0, overwrite: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not overwrite:  # a restart never erases an earlier video: the next free name instead
            self.path = _free_name(self.path)
        self.fps = fps or 15.0
        self.writer: cv2.VideoWriter | None = None
        self._link = ExitStack()  # the link OpenCV writes through for a name that is not UTF-8
        self.frames = 0
        self.errors = 0
        self.last_error: str | None = None
        self._sizes: list[int] = []
        self._last_log = -1e18

    #: frames between two checks of the file's size
    check_every = 30
    #: checks in a row without growth that count as a failed write (encoders buffer a little)
    stall_checks = 3

    def _failed(self, reason: str) -> None:
        self.errors += 1
        self.last_error = reason
        now = time.monotonic()
        if self.errors == 1 or now - self._last_log >= 10.0:
            self._last_log = now
            log.warning("--annotate %s: %s (%d failed check(s))", self.path, reason, self.errors)

    def _check_growth(self) -> None:
        try:
            size = os.stat(self.path).st_size
        except OSError as e:
            self._failed(f"cannot see the file: {e.strerror or e}")
            return
        self._sizes = (self._sizes + [size])[-(self.stall_checks + 1) :]
        if len(self._sizes) > self.stall_checks and self._sizes[0] >= self._sizes[-1]:
            self._failed(f"the file stopped growing at {size:,} bytes after {self.frames} frames (disk full?)")

    def _verify(self) -> None:
        """The finished file must open and hold the frames written (a full disk leaves it unplayable)."""
        import cv2

        with opencv_path(self.path) as name:
            cap = cv2.VideoCapture(name)
            try:
                n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else -1
            finally:
                cap.release()
        if n < 0:
            self._failed(f"the finished file cannot be read back ({self.frames} frames were written): disk full?")
        elif n < self.frames:
            self._failed(f"the finished file holds {n} of the {self.frames} frames written: disk full?")

    def write(
        self, frame: Frame, boxes: Sequence[tuple[int, int, int, int]], ids: Sequence[int], labels: Sequence[str]
    ) -> None:
        import cv2

        img = frame.image
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
        if self.writer is None:
            h, w = img.shape[:2]
            name = self._link.enter_context(opencv_path(self.path))
            self.writer = cv2.VideoWriter(name, cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise _open_error(self.path)
        draw_faces(img, boxes, [f"#{tid} {lab}" for tid, lab in zip(ids, labels)])
        self.writer.write(img)
        self.frames += 1
        if self.frames % self.check_every == 0:
            self._check_growth()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            self._link.close()
            self._verify()


def _open_error(path: Path) -> Exception:
    """Why OpenCV could not open a video for writing (it does not say): a full or read-only disk is an
    :class:`~edge_fer.errors.OutputError` (exit 74), anything else a :class:`ConfigError` (exit 2)."""
    from edge_fer.errors import ConfigError, write_error

    try:
        probe_folder(path.parent, 65536)
    except OSError as e:
        return write_error(f"cannot write annotated video {path}: {e.strerror or e}", e, ConfigError)
    return ConfigError(f"cannot write annotated video {path}")
