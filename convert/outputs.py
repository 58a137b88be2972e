"""Where ``edge-fer convert`` writes, checked before any heavy work, and how: every output staged to a
temporary file in its folder (:func:`edge_fer.fsutil.stage_bytes`), then all renamed into place
together, so a failed conversion leaves no partial set of files."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edge_fer.errors import EdgeFerError, OutputError
from edge_fer.fsutil import replace_durably, stage_bytes


def sibling(out: Path, suffix: str) -> Path:
    """``model.tflite`` -> ``model<suffix>`` (e.g. ``_float.tflite``)."""
    return out.with_name(out.stem + suffix)


@dataclass(frozen=True)
class OutputPaths:
    model: Path
    report: Path
    float_model: Path | None = None
    decoder: Path | None = None
    quality: Path | None = None
    reliability: Path | None = None  # the reliability diagram of --calibrate

    @classmethod
    def plan(
        cls,
        out: Path,
        report: Path | None,
        write_float: bool = False,
        decoder: bool = False,
        quality: bool = False,
        calibrate: bool = False,
    ) -> OutputPaths:
        return cls(
            out,
            report or sibling(out, "_report.json"),
            sibling(out, "_float.tflite") if write_float else None,
            sibling(out, "_decoder.tflite") if decoder else None,
            sibling(out, "_ae.tflite") if quality else None,
            sibling(out, "_reliability.png") if calibrate else None,
        )

    def check(self) -> None:
        """Distinct paths, each writable (a one-line :class:`EdgeFerError` otherwise)."""
        named = (
            (self.model, "output"),
            (self.report, "report"),
            (self.float_model, "output"),
            (self.decoder, "output"),
            (self.quality, "output"),
            (self.reliability, "output"),
        )
        targets = [(p, what) for p, what in named if p is not None and str(p) != "-"]  # "-": stdout
        if len({p.resolve() for p, _ in targets}) != len(targets):
            raise EdgeFerError(
                "the output, report, float, decoder, autoencoder and reliability diagram paths must differ"
            )
        for p, what in targets:
            _check_writable(p, what)


def _check_writable(path: Path, what: str) -> None:
    if path.is_dir():
        raise EdgeFerError(f"{what} {path} is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {what} {path}: folder {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"cannot write {what} {path}: {e.strerror or e}") from None


class StagedFiles:
    """Files written to temporary names in their target folders, renamed into place together
    (:meth:`commit`) or not at all (:meth:`discard`). Use as a context manager: what is not
    committed is discarded."""

    def __init__(self) -> None:
        self._items: list[tuple[Path, Path]] = []

    def add(self, target: Path, data: bytes) -> None:
        try:
            self._items.append((stage_bytes(target, data), target))
        except EdgeFerError as e:  # a full disk, a folder gone: the output, not the input
            raise OutputError(str(e)) from None

    def commit(self) -> None:
        for tmp, target in self._items:
            try:
                replace_durably(tmp, target)
            except OSError as e:
                raise OutputError(f"cannot write {target}: {e.strerror or e}") from None
        self._items.clear()

    def discard(self) -> None:
        for tmp, _ in self._items:
            tmp.unlink(missing_ok=True)
        self._items.clear()

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()
