"""Disk space for a training run's files.

Keras writes checkpoints through h5py, and h5py on a full disk does not fail cleanly: it prints a
traceback for every object it cannot flush, can end the process with a segmentation fault, and leaves
a half-written file behind. So a training run never lets a write find the disk full: before each
checkpoint (and before each epoch's backup) it checks that the run's folder has room for the file
with a margin, and stops with one line (:class:`~edge_fer.errors.OutputError`, exit 74) when it has
not. Everything written before stays as it was, so ``--resume`` goes on from the last finished epoch
once space is freed. Model files are written beside their target and renamed over it, so a file that
is there is whole.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from edge_fer.errors import OUTPUT_ERRNOS, OutputError
from edge_fer.fsutil import replace_durably

#: room kept free besides the file being written: the log, state.json, the history rows
RESERVE = 1 << 20
#: HDF5 / zip bookkeeping per weight tensor (measured: ~3 KiB a tensor in a .weights.h5)
PER_TENSOR = 8 << 10
RESUME_HINT = "free some space, then rerun with --resume"


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def bytes_needed(model: Any) -> int:
    """An upper bound for one checkpoint of ``model`` (a Keras model): its weights as float32, twice
    more for an optimizer's slots (a backup holds them), the per-tensor overhead and the reserve."""
    weights = list(getattr(model, "weights", []))
    values = sum(_size(w) for w in weights)
    return 4 * values * 3 + PER_TENSOR * len(weights) + RESERVE


def _size(w: Any) -> int:
    n = 1
    for d in getattr(w, "shape", ()):
        n *= int(d or 1)
    return n


def free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def ensure_space(folder: Path, need: int, what: str, hint: bool = True) -> None:
    """Raise :class:`OutputError` when ``folder``'s file system has less than ``need`` bytes free."""
    free = free_bytes(folder)
    if free is not None and free < need:
        raise OutputError(
            f"cannot write {what} in {folder}: no space left on device ({_mib(free)} free, about "
            f"{_mib(need)} needed){'; ' + RESUME_HINT if hint else ''}"
        )


def save_model_file(model: Any, target: Path, weights_only: bool = False) -> None:
    """``model.save(target)`` (or ``save_weights``), atomically: written to a hidden file with the same
    suffix beside ``target`` and renamed over it, after a check for room."""
    ensure_space(target.parent, bytes_needed(model), target.name)
    tmp = target.with_name(f".partial-{target.name}")
    try:
        (model.save_weights if weights_only else model.save)(tmp)
        replace_durably(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in OUTPUT_ERRNOS:
            raise OutputError(f"cannot write {target}: {e.strerror or e}; {RESUME_HINT}") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def export_dir(write: Any, target: Path, need: int) -> None:
    """``write(path)`` makes a folder (a SavedModel): made beside ``target`` and renamed over it, so
    a failed export leaves no partial folder that a later ``convert`` would read."""
    ensure_space(target.parent, need, target.name)
    tmp = target.with_name(f".partial-{target.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def guard_callback(folder: Path) -> Any:
    """A Keras callback that checks for room at each epoch's end. It must come before the callbacks
    that write there (backup, best checkpoint): Keras calls them in order."""
    import keras

    class SpaceGuard(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            ensure_space(folder, bytes_needed(self.model), f"the checkpoints of epoch {epoch + 1}")

    return SpaceGuard()


def as_output_error(folder: Path, e: BaseException, hint: bool = True) -> OutputError | None:
    """``e`` (raised while a run was writing) as an output error when the disk is the cause: an
    :class:`OSError` of a full or read-only disk, or any failure while ``folder`` has less than
    :data:`RESERVE` free (h5py and TensorFlow report a full disk in their own words). ``hint``: say
    that ``--resume`` goes on."""
    tail = f"; {RESUME_HINT}" if hint else ""
    if isinstance(e, OSError) and e.errno in OUTPUT_ERRNOS:
        return OutputError(f"cannot write {e.filename or folder}: {e.strerror or e}{tail}")
    free = free_bytes(folder)
    if free is not None and free < RESERVE:
        return OutputError(f"cannot write in {folder}: no space left on device ({_mib(free)} free){tail}")
    return None
