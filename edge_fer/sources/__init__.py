"""Frame sources behind one base class (:class:`Source`, with its :class:`SourceMode`), chosen from the
``--source`` string.

* ``0``, ``1`` ...              OpenCV camera (live: latest frame only, drops counted, reopened on failure)
* ``rtsp://...``, ``http://...`` OpenCV stream (live, same)
* ``picamera2`` / ``picamera2:1`` Raspberry Pi camera via picamera2 (live, Y plane of a YUV420 stream)
* ``video.mp4``                  a video file: every frame, in order, no drops
* ``img.jpg``, a folder, a glob  still images: every image, in order

Adding a source kind is one module plus one branch in :func:`open_source`.
"""

from __future__ import annotations

import glob
import os
import re
from abc import ABC, abstractmethod
from enum import Enum
from pathlib import Path
from typing import Any

from edge_fer.errors import SourceError
from edge_fer.types import Frame

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class SourceMode(Enum):
    """How a source hands out frames, and so how the pipeline treats them."""

    LIVE = "live"  # cameras, streams: the newest frame only (older ones dropped); read() may time out
    FILE = "file"  # a video file: every frame, in order, then the end
    STILL = "still"  # independent still images: each is its own scene, nothing tracked across them


class Source(ABC):
    """Where frames come from. Built by :func:`open_source`, opened by the pipeline."""

    name: str
    mode: SourceMode
    fps: float = 0.0  # frames per second when known (the annotated video's rate), else 0
    last_error: str | None = None  # why the last read or open failed
    current_path: Path | None = None  # STILL: the file of the frame last read

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame; ``None`` at the end of a finite source (or on timeout for a live one)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Counters: {"frames", "dropped", "errors", "reopens"} (and "bad_frames" for a video)."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """No frame will ever come again (the end of a file, or closed)."""


def describe(spec: str) -> str:
    """The source as it may be printed: credentials hidden (:func:`edge_fer.redact.redact`)."""
    from edge_fer.redact import redact

    return redact(spec)


def open_source(
    spec: str | int,
    *,
    width: int = 0,
    height: int = 0,
    fps: float = 0.0,
    loop: bool = False,
    wait: bool = False,
    max_pixels: int | None = None,
    stall_timeout: float = 10.0,
) -> Source:
    """Build (not yet open) the source for a ``--source`` string; the options are the ``[source]``
    section's (checked there). ``wait``: a live source that cannot be opened at start is retried.
    ``max_pixels`` (default :data:`edge_fer.imageio.DEFAULT_MAX_PIXELS`, 0: no limit): larger images
    and videos are refused from their header, before anything is decoded. ``stall_timeout``: a live
    source whose capture call has not returned for this long is abandoned and reopened (0: never)."""
    from edge_fer.fsutil import path_text
    from edge_fer.imageio import DEFAULT_MAX_PIXELS
    from edge_fer.redact import register_uri_secrets

    s = str(spec).strip()
    register_uri_secrets(s)  # a camera password is hidden from every log line and error from now on
    if max_pixels is None:
        max_pixels = DEFAULT_MAX_PIXELS
    if not s:
        raise SourceError("empty --source")
    if s == "picamera2" or s.startswith("picamera2:"):
        from edge_fer.sources.picamera2 import Picamera2Source

        arg = s.split(":", 1)[1] if ":" in s else "0"
        if not re.fullmatch(r"\d+", arg):
            raise SourceError(f"--source {s!r}: the camera number after 'picamera2:' must be 0, 1, ...")
        num = int(arg)
        return Picamera2Source(
            camera_num=num, size=(width or 640, height or 480), fps=fps, wait_at_start=wait, stall_timeout=stall_timeout
        )
    if re.fullmatch(r"\d+", s):
        from edge_fer.sources.opencv import OpenCVCameraSource

        return OpenCVCameraSource(
            int(s), width=width, height=height, fps=fps, wait_at_start=wait, stall_timeout=stall_timeout
        )
    if _URL.match(s) and not s.startswith("file://"):
        from edge_fer.sources.opencv import OpenCVCameraSource

        return OpenCVCameraSource(
            s, width=width, height=height, fps=fps, wait_at_start=wait, stall_timeout=stall_timeout
        )
    if s.startswith("file://"):
        s = s[len("file://") :]
    p = Path(os.path.expanduser(s))
    from edge_fer.sources.images import ImageSource

    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) in folder {p}")
        return ImageSource(files, name=path_text(p), max_pixels=max_pixels)
    if p.is_file():
        if p.suffix.lower() in IMAGE_EXTS:
            return ImageSource([p], name=path_text(p), max_pixels=max_pixels)
        from edge_fer.sources.opencv import VideoFileSource

        return VideoFileSource(p, loop=loop, max_pixels=max_pixels)
    if glob.has_magic(s):
        files = sorted(Path(f) for f in glob.glob(os.path.expanduser(s)) if Path(f).suffix.lower() in IMAGE_EXTS)
        if not files:
            raise SourceError(f"no images match {s!r}")
        return ImageSource(files, name=path_text(s), max_pixels=max_pixels)
    raise SourceError(f"source {s!r} is not a file, folder, glob, camera index, URL or 'picamera2'")


__all__ = ["Source", "SourceMode", "open_source", "describe", "IMAGE_EXTS"]
