"""What ``edge-fer convert`` converts: a run directory or a ``.keras`` file, with the run's metadata
and config (read through :class:`~edge_fer.train.rundir.RunDir`), checked before any heavy work."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_fer.train.rundir import RunDir

from edge_fer.bundle import ModelMeta
from edge_fer.errors import ModelError
from edge_fer.fsutil import check_model_file

log = logging.getLogger(__name__)


@dataclass
class ConvertSource:
    model_path: Path
    run_dir: RunDir | None  # None: a bare .keras file
    meta: ModelMeta
    meta_note: str | None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> RunDir:
        """Where the metadata and config are read: the run directory, or the .keras file's folder."""
        return self.run_dir or RunDir(self.model_path.parent)

    def config_data(self) -> tuple[Path | None, str | None]:
        """The dataset named in the run's config.json, found (cwd, run dir, its parent); with a
        reason when it is not."""
        raw = self.config.get("data")
        if not raw:
            return None, "the run's config.json names no dataset"
        found = self.base.find_data(raw)
        return (found, None) if found is not None else (None, f"the run's dataset {raw!r} (config.json) was not found")

    def require_run_dir(self, flag: str, *files: str) -> RunDir:
        """The run directory (``--decoder``, ``--write-quality-gate`` need one); ``files`` must be in it."""
        if self.run_dir is None:
            raise ModelError(f"{flag} needs a run directory (with {' and '.join(files)})")
        return self.run_dir


def resolve_source(src: Path) -> ConvertSource:
    """A run directory (its model.keras) or a .keras file; a one-line :class:`ModelError` otherwise."""
    if not src.exists():
        raise ModelError(f"{src} does not exist")
    run: RunDir | None = None
    if src.is_dir():
        model_path = RunDir(src).model
        if not model_path.exists():
            raise ModelError(f"{src} is not a run directory (no model.keras in it)")
        check_model_file(model_path)  # a FIFO would block the Keras loader, a device never ends
        run = RunDir(src)
    else:
        _check_model_file(src)
        model_path = src
    base = run or RunDir(model_path.parent)
    meta, note = base.read_meta(), None
    if meta is None:
        meta, note = ModelMeta(), f"no metadata.json next to {model_path.name}: assumed the edge-fer defaults"
        log.warning("%s", note)
    return ConvertSource(model_path, run, meta, note, base.read_config())


def is_tflite(src: Path) -> bool:
    """A file that is a TFLite flatbuffer (by its identifier, or its name when unreadable)."""
    if not src.is_file():
        return False
    try:
        with src.open("rb") as f:
            head = f.read(8)
    except OSError:
        return src.suffix.lower() == ".tflite"
    return head[4:8] == b"TFL3" or src.suffix.lower() == ".tflite"


def _check_model_file(src: Path) -> None:
    check_model_file(src)  # before it is opened: a FIFO would block, a device never ends
    try:
        with src.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelError(f"cannot read {src}: {e.strerror or e}") from None
    if head[4:8] == b"TFL3" or src.suffix.lower() == ".tflite":
        raise ModelError(
            f"{src} is already a TFLite model: convert needs the float Keras model "
            "(a run directory or a .keras file) to calibrate and verify; re-quantizing a .tflite is not supported"
        )
    if src.suffix.lower() != ".keras" and head[:4] != b"PK\x03\x04":
        raise ModelError(f"{src} is not a model (expected a run directory or a Keras .keras file)")
