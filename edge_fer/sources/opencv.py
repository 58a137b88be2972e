"""OpenCV sources: cameras by index and RTSP/HTTP streams (live), and video files (every frame)."""

from __future__ import annotations

import logging
import math
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_fer.errors import SourceError
from edge_fer.fsutil import opencv_path, path_text
from edge_fer.imageio import DEFAULT_MAX_PIXELS, check_pixels
from edge_fer.sources import Source, SourceMode
from edge_fer.sources.live import LiveSource
from edge_fer.types import Frame

log = logging.getLogger(__name__)


class _CvCapture:
    def __init__(self, target: int | str, width: int = 0, height: int = 0, fps: float = 0.0):
        if isinstance(target, str) and path_text(target) != target:  # OpenCV crashes on such a str
            raise SourceError(f"OpenCV cannot open {path_text(target)}: it is not valid UTF-8")
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


class VideoFileSource(Source):
    """A video file: every frame, in order, never dropped. ``loop=True`` restarts at the end.

    A frame that cannot be decoded (a damaged file) is skipped and counted (``bad_frames``), and
    reading goes on: the decoder usually recovers at the next frame or key frame. After
    ``max_bad_frames`` unreadable frames in a row the file counts as ended (a truncated file ends that
    way too); so does a failed read at the frame count the container announces. What was skipped, and
    where a damaged file ended, is logged when the source closes.
    """

    mode = SourceMode.FILE
    max_bad_frames = 100

    def __init__(
        self,
        path: str | Path,
        loop: bool = False,
        max_bad_frames: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ):
        self.path = Path(path)
        self.name = path_text(self.path)  # for messages and reports: a name that is not UTF-8 escaped
        self.loop = loop
        self.max_pixels = max_pixels  # source.max_pixels: checked from the container's header at open
        if max_bad_frames is not None:
            self.max_bad_frames = max(1, int(max_bad_frames))
        self.cap: cv2.VideoCapture | None = None
        self._link = ExitStack()  # the link OpenCV opens for a name that is not UTF-8 (removed at close)
        self._cv_path: str | None = None
        self._frames = 0
        self._errors = 0
        self._bad = 0  # unreadable frames skipped (decoding went on after them)
        self._streak = 0  # failed reads in a row
        self._loops = 0
        self._done = False
        self._count = 0  # frames announced by the container (0: unknown)
        self._pass_frames = 0  # frames decoded in this pass over the file
        self._gave_up_at: tuple[int, int] | None = None  # (frames decoded in the pass, failed reads)
        self.last_error: str | None = None
        self.fps = 0.0
        self._offset = 0.0  # media time at the start of this pass (loop=True)
        self._last_pos = 0.0  # position of the last frame read in this pass

    def _open_capture(self) -> None:
        if self._cv_path is None:
            self._cv_path = self._link.enter_context(opencv_path(self.path))
        self.cap = cv2.VideoCapture(self._cv_path)
        if not self.cap.isOpened():
            self.cap.release()
            self.cap = None
            self._release_link()
            raise SourceError(f"cannot open video {path_text(self.path)} (not a video OpenCV can decode)")
        self._count = max(0, int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self._pass_frames = 0
        self._streak = 0

    def open(self) -> None:
        self._open_capture()
        assert self.cap is not None
        w, h = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        try:  # source.max_pixels, from the container's header: no frame of a huge video is decoded
            check_pixels(w, h, self.max_pixels, f"video {path_text(self.path)}")
        except SourceError:
            self.close()
            raise
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._done = False

    @property
    def finished(self) -> bool:
        return self._done

    def _read_one(self) -> np.ndarray | None:
        """The next decoded frame, or None (``last_error`` says why)."""
        assert self.cap is not None
        try:
            ok, img = self.cap.read()
        except cv2.error as e:
            self.last_error = f"decoder error: {str(e).strip().splitlines()[-1]}"
            return None
        if ok and img is not None and img.size:
            return img
        self.last_error = "the decoder returned no frame"
        return None

    def _position(self) -> float:
        """The frame just read's position in the file, in seconds: its presentation timestamp as
        OpenCV reports it (``CAP_PROP_POS_MSEC`` after the read; right for variable-frame-rate files
        too), or frame index / nominal fps when the container gives no usable timestamp."""
        assert self.cap is not None
        ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
        if ms is not None and math.isfinite(ms) and ms >= 0 and (ms > 0 or self._pass_frames == 0):
            return float(ms) / 1000.0
        return self._pass_frames / self.fps if self.fps > 0 else 0.0

    def _at_end(self) -> bool:
        """A failed read is the end of the file (not a damaged frame) at the announced frame count, or
        once the last frame read was at the announced end in time: frames lost to damage earlier in
        the file leave the decoder's frame counter behind, but not the frames' timestamps."""
        assert self.cap is not None
        if self._count <= 0:
            return False
        if self.cap.get(cv2.CAP_PROP_POS_FRAMES) >= self._count:
            return True
        return self.fps > 0 and self._pass_frames > 0 and self._last_pos >= (self._count - 1.5) / self.fps

    def read(self, timeout: float | None = None) -> Frame | None:
        while self.cap is not None and not self._done:
            img = self._read_one()
            if img is not None:
                if self._streak:
                    self._bad += self._streak
                    self._errors += self._streak
                    if self._bad == self._streak:  # the first damage seen: say it once, sum up at close
                        log.warning(
                            "video %s: %d unreadable frame(s) before frame %d: skipped",
                            self.path,
                            self._streak,
                            self._frames,
                        )
                    self._streak = 0
                pos = self._position()
                f = Frame(img, self._frames, time.time(), pos, media_time=self._offset + pos)
                self._last_pos = pos
                self._frames += 1
                self._pass_frames += 1
                return f
            self._streak += 1
            if not (self._at_end() or self._streak >= self.max_bad_frames):
                continue  # a damaged frame: try the next one
            # the end of this pass over the file
            if not self._at_end():
                self._gave_up_at = (self._pass_frames, self._streak)
                self.last_error = f"{self._streak} reads in a row failed"
            if self.loop and self._pass_frames > 0:
                self._loops += 1
                # media time goes on across passes: the next pass starts one frame after this one ended
                self._offset += self._last_pos + (1.0 / self.fps if self.fps > 0 else 0.0)
                self.cap.release()
                self._open_capture()
                continue
            self._done = True
        return None

    @property
    def ended_early(self) -> str | None:
        """Why the file ended before its end (damaged or truncated), or None when it ended normally."""
        if self._gave_up_at is None:
            return None
        n, k = self._gave_up_at
        of = f" (of the {self._count} it announces)" if self._count else ""
        return f"decoding stopped after {n} frames{of}, at {k} unreadable frames in a row"

    def _release_link(self) -> None:
        self._cv_path = None
        self._link.close()

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
        self._release_link()
        parts = []
        if self._bad:
            parts.append(f"{self._bad} unreadable frame(s) skipped, {self._frames} decoded")
        if self._gave_up_at:
            n, k = self._gave_up_at
            of = f" of the {self._count} it announces" if self._count else ""
            parts.append(f"a pass ended after {n}{of} frames, at {k} unreadable frames in a row (damaged or truncated)")
        if parts:
            log.warning("video %s: %s", self.path, "; ".join(parts))

    def stats(self) -> dict[str, Any]:
        return {
            "frames": self._frames,
            "dropped": 0,
            "errors": self._errors,
            "bad_frames": self._bad,
            "reopens": 0,
            "loops": self._loops,
        }
