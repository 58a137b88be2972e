"""OpenCV sources: cameras by index and RTSP/HTTP streams (live), and video files (every frame)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_fer.errors import SourceError
from edge_fer.sources.live import LiveSource
from edge_fer.types import Frame

log = logging.getLogger(__name__)


class _CvCapture:
    def __init__(self, target: int | str, width: int = 0, height: int = 0, fps: float = 0.0):
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceError(f"OpenCV cannot open {target!r}")
        self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if width and height:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            self.cap.set(cv2.CAP_PROP_FPS, fps)

    def grab(self) -> tuple[np.ndarray, float | None, np.ndarray | None]:
        ok, img = self.cap.read()
        if not ok or img is None:
            raise SourceError("no frame (device gone or stream ended)")
        pos = self.cap.get(cv2.CAP_PROP_POS_MSEC)
        return img, (pos / 1000.0 if pos and pos > 0 else None), None

    def close(self) -> None:
        self.cap.release()


class OpenCVCameraSource(LiveSource):
    """A camera index or a stream URL: latest frame only, drops counted, reopened with back-off."""

    def __init__(self, target: int | str, *, width: int = 0, height: int = 0, fps: float = 0.0, **kw: Any):
        from edge_fer.sources import describe

        super().__init__(
            f"camera {target}" if isinstance(target, int) else describe(str(target)),
            lambda: _CvCapture(target, width, height, fps),
            **kw,
        )


class VideoFileSource:
    """A video file: every frame, in order, never dropped. ``loop=True`` restarts at the end."""

    live = False
    still = False

    def __init__(self, path: str | Path, loop: bool = False):
        self.path = Path(path)
        self.name = str(self.path)
        self.loop = loop
        self.cap: cv2.VideoCapture | None = None
        self._frames = 0
        self._errors = 0
        self._loops = 0
        self._done = False
        self.fps = 0.0

    def open(self) -> None:
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise SourceError(f"cannot open video {self.path} (not a video OpenCV can decode)")
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._done = False

    @property
    def finished(self) -> bool:
        return self._done

    def read(self, timeout: float | None = None) -> Frame | None:
        if self.cap is None or self._done:
            return None
        ok, img = self.cap.read()
        if not ok and self.loop and self._frames > 0:
            self._loops += 1
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self.cap.read()
        if not ok or img is None:
            self._done = True
            return None
        pos = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        f = Frame(img, self._frames, time.time(), pos)
        self._frames += 1
        return f

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    def stats(self) -> dict[str, Any]:
        return {"frames": self._frames, "dropped": 0, "errors": self._errors, "reopens": 0, "loops": self._loops}
