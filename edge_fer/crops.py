"""Face crops saved to a folder (``--save-crops``): the classifier's input, one PNG per face.

Saved only when the user asks (privacy). The folder is checked before the first frame. Each crop is
encoded to PNG in memory and then written with ordinary file writes, so a full disk is an error
(``cv2.imwrite`` reports success for a 0-byte file there); a crop that cannot be written is removed,
counted, logged the first time and then at most every 10 s, and the run ends with exit code 74 after it
has finished (:meth:`edge_fer.pipeline.Pipeline.check_outcome`). Files are named per run
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
        self.last_error: str | None = None
        self._last_log = -1e18

    def check_folder(self) -> None:
        """The folder must be one we can write, checked before the first frame."""
        from edge_fer.fsutil import probe_folder

        try:
            probe_folder(self.folder)
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
                ok, buf = cv2.imencode(".png", crop)
                if not ok:
                    raise OSError("the PNG encoder failed")
                with open(path, "wb") as f:
                    f.write(buf.tobytes())
            except (OSError, cv2.error) as e:
                path.unlink(missing_ok=True)  # no empty or partial PNG left behind
                self._failed(path, getattr(e, "strerror", None) or str(e))

    def _failed(self, path: Path, reason: str) -> None:
        self.errors += 1
        self.last_error = reason
        now = time.monotonic()
        if self.errors == 1 or now - self._last_log >= 10.0:
            self._last_log = now
            log.warning("--save-crops: cannot write %s (%s); %d crop(s) lost so far", path, reason, self.errors)
