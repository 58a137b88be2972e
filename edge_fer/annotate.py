"""The annotated video (``--annotate``): each frame with its face boxes, track ids and labels.

Written only when the user asks (privacy). A restart never erases an earlier video: without
``--overwrite`` an existing file makes it write the next free name (``ann.1.mp4``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

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


class Annotator:
    """Writes an annotated video (boxes, track ids, labels). Only when the user asks (--annotate)."""

    def __init__(self, path: str | Path, fps: float = 15.0, overwrite: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not overwrite:  # a restart never erases an earlier video: the next free name instead
            self.path = _free_name(self.path)
        self.fps = fps or 15.0
        self.writer: cv2.VideoWriter | None = None

    def write(
        self, frame: Frame, boxes: Sequence[tuple[int, int, int, int]], ids: Sequence[int], labels: Sequence[str]
    ) -> None:
        import cv2

        img = frame.image
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
        if self.writer is None:
            h, w = img.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                from edge_fer.errors import ConfigError

                raise ConfigError(f"cannot write annotated video {self.path}")
        draw_faces(img, boxes, [f"#{tid} {lab}" for tid, lab in zip(ids, labels)])
        self.writer.write(img)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
