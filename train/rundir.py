"""The files of a training run directory: written by ``train`` (and ``adapt``), read by ``convert``
and ``adapt``. Every name a run holds is one property here."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_fer.bundle import ModelMeta
from edge_fer.errors import EdgeFerError, ModelError
from edge_fer.fsutil import check_input_file


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # a str is fine too

    # --- what train writes ---------------------------------------------------------------------------
    @property
    def ckpt(self) -> Path:
        return self.root / "checkpoints"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def history(self) -> Path:
        return self.root / "history.json"

    @property
    def history_csv(self) -> Path:
        return self.root / "history.csv"

    @property
    def history_jsonl(self) -> Path:
        return self.root / "history.jsonl"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata.json"

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def encoder(self) -> Path:
        return self.root / "encoder.keras"

    @property
    def decoder(self) -> Path:
        return self.root / "decoder.keras"

    @property
    def autoencoder(self) -> Path:
        return self.root / "autoencoder.keras"

    @property
    def saved_model(self) -> Path:
        return self.root / "saved_model"

    @property
    def card(self) -> Path:
        return self.root / "MODEL_CARD.md"

    @property
    def curves(self) -> Path:
        return self.root / "curves.png"

    @property
    def confusion(self) -> Path:
        return self.root / "confusion_matrix.png"

    @property
    def recon(self) -> Path:
        return self.root / "reconstructions.png"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def teacher_targets(self) -> Path:
        """The teachers' soft targets, kept so that a resumed run does not label the faces again."""
        return self.ckpt / "teacher_targets.npz"

    @property
    def detector_copies(self) -> Path:
        """The copies recut around the detector's box (``--detector-copies``), kept for a resumed run."""
        return self.ckpt / "detector_copies.npz"

    @property
    def ae_weights(self) -> Path:
        """Stage 1's own checkpoint (the autoencoder before fine-tuning changed the encoder)."""
        return self.ckpt / "ae.weights.h5"

    # --- what adapt adds -----------------------------------------------------------------------------
    @property
    def adapt_report(self) -> Path:
        return self.root / "adapt.json"

    @property
    def calibration(self) -> Path:
        """The adapted camera's crops with pseudo-labels (``convert --calib-data``)."""
        return self.root / "calibration.npz"

    @property
    def is_adapted(self) -> bool:
        return self.calibration.is_file() and self.adapt_report.is_file()

    # --- reading -------------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        """``config.json`` as a dict (``{}`` when there is none); a one-line :class:`ModelError` when
        it cannot be read (a FIFO, a device or a folder under that name is never opened)."""
        if not _present(self.config):
            return {}
        try:
            config = json.loads(self.config.read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot read {self.config}: {e}") from None
        if not isinstance(config, dict):
            raise ModelError(f"{self.config}: not a JSON object")
        return config

    def read_meta(self) -> ModelMeta | None:
        """``metadata.json``; None when the run has none (a FIFO, a device or a folder under that name
        is a one-line :class:`ModelError`, never opened)."""
        return ModelMeta.load(self.metadata) if _present(self.metadata) else None

    def default_data(self) -> Path | None:
        """The dataset this run was trained on, where it is now (``config.json``'s ``data``); None when
        the run names none, it cannot be found, or the config cannot be read (that is said elsewhere)."""
        try:
            return self.find_data(self.read_config().get("data"))
        except ModelError:
            return None

    def find_data(self, raw: Any) -> Path | None:
        """The dataset a run's ``config.json`` names (``raw``), where it is: as given (the working
        folder), else relative to the run directory or its parent. None when not found."""
        if not raw:
            return None
        p = Path(str(raw)).expanduser()
        if p.exists():
            return p
        if not p.is_absolute():
            for cand in (self.root / p, self.root.parent / p):
                if cand.exists():
                    return cand
        return None


def _present(path: Path) -> bool:
    """Whether a run file is there to read: False when there is nothing under its name (a dangling
    link too); a :class:`ModelError` naming it when it is not a regular file."""
    if not os.path.exists(path):
        return False
    try:
        check_input_file(path, "run file")
    except EdgeFerError as e:
        raise ModelError(str(e)) from None
    return True
