"""Still images (files, a folder, a glob): every image once, in order."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

from edge_fer.fsutil import path_text
from edge_fer.imageio import DEFAULT_MAX_PIXELS, ImageTooLarge, read_image
from edge_fer.sources import Source, SourceMode
from edge_fer.types import Frame

log = logging.getLogger(__name__)


class ImageSource(Source):
    mode = SourceMode.STILL

    def __init__(
        self, paths: Sequence[str | Path], name: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
    ):
        self.paths = [Path(p) for p in paths]
        self.max_pixels = max_pixels  # source.max_pixels: larger images are refused from their header
        self.name = name or (path_text(self.paths[0]) if self.paths else "images")
        self._i = 0
        self._frames = 0
        self._errors = 0
        self.current_path: Path | None = None
        self.last_error: str | None = None

    def open(self) -> None:
        self._i = 0

    @property
    def finished(self) -> bool:
        return self._i >= len(self.paths)

    def read(self, timeout: float | None = None) -> Frame | None:
        while self._i < len(self.paths):
            p = self.paths[self._i]
            self._i += 1
            try:
                img = read_image(p, self.max_pixels, cv2.IMREAD_COLOR)  # header checked before decoding
            except ImageTooLarge as e:
                self._errors += 1
                self.last_error = str(e)
                log.warning("%s: skipped", e)
                continue
            if img is None:
                self._errors += 1
                self.last_error = f"cannot read image {p}: missing, unreadable or not an image OpenCV can decode"
                log.warning("cannot read image %s: skipped", p)
                continue
            self.current_path = p
            f = Frame(img, self._frames, time.time(), None)
            self._frames += 1
            return f
        return None

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {"frames": self._frames, "dropped": 0, "errors": self._errors, "reopens": 0}
