"""Face crops saved to a folder (``--save-crops``): the classifier's input, one PNG per face.

Saved only when the user asks (privacy). The folder is checked before the first frame; a crop
that cannot be written is counted (and logged now and then), never fatal. Files are named per run
(``<start time>-<pid>_f<frame>_t<track>.png``), so a restart never replaces earlier crops.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_fer.errors import ConfigError

if TYPE_CHECKING:
    from edge_fer.classify import Classifier

log = logging.getLogger(__name__)


class CropSaver:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.run_tag = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.errors = 0

    def check_folder(self) -> None:
        """The folder must be one we can write, checked before the first frame."""
        probe = self.folder / f".edge-fer-write-test-{os.getpid()}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"--save-crops {self.folder}: cannot write there ({e.strerror or e})") from None

    def save(
        self,
        gray: np.ndarray,
        boxes: Sequence[tuple[int, int, int, int]],
        ids: Sequence[int],
        frame_index: int,
        classifier: Classifier,
    ) -> None:
        """The crops of ``boxes`` as the classifier sees them (size, preprocessing), one file per face."""
        import cv2

        from edge_fer.preprocess import face_crops

        spec = classifier.input_spec
        self.folder.mkdir(parents=True, exist_ok=True)
        for crop, tid in zip(face_crops(gray, boxes, classifier.preprocessing, spec.width, spec.height), ids):
            path = self.folder / f"{self.run_tag}_f{frame_index:07d}_t{tid}.png"
            try:
                ok = cv2.imwrite(str(path), crop)
            except cv2.error:
                ok = False
            if not ok:
                self.errors += 1
                if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                    log.warning("--save-crops: cannot write %s (%d crop(s) lost so far)", path, self.errors)
