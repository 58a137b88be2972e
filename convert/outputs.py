"""Where ``edge-fer convert`` writes, checked before any heavy work, and how: every output staged to a
temporary file in its folder (:func:`edge_fer.fsutil.stage_bytes`), then all renamed into place
together, so a failed conversion leaves no partial set of files: the new set, or the old one.

The bundle and its companion files are regular files side by side: an output that exists and is not
a regular file (a device such as ``/dev/full``, a FIFO) is refused before any work; one that is a
link to a regular file keeps its link (the file it points at is replaced)."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edge_fer.errors import EdgeFerError, OutputError
from edge_fer.fsutil import file_kind, fsync_dir, stage_bytes


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
        """Distinct paths, each writable (a one-line :class:`EdgeFerError` otherwise); the bundle and
        its companions (not the report, which may go to a device such as ``/dev/stdout``) must be
        regular files or new ones."""
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
            _check_writable(p, what, staged=p != self.report)


def _check_writable(path: Path, what: str, staged: bool = True) -> None:
    if path.is_dir():
        raise EdgeFerError(f"{what} {path} is a directory; give a file name")
    try:
        st: os.stat_result | None = os.stat(path)  # follows links; never opens (a FIFO would block)
    except OSError:
        st = None
    if staged and st is not None and not stat.S_ISREG(st.st_mode):
        raise EdgeFerError(
            f"{what} {path} is {file_kind(st.st_mode)}, not a regular file: a bundle is written as files "
            "beside each other (model, report, companions); give a file name"
        )
    if path.is_symlink():  # the file it points at is replaced: its folder must take the new file
        path = Path(os.path.realpath(path))
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
    committed is discarded. A target that is a link to a file keeps its link: the file it points at
    is replaced."""

    def __init__(self) -> None:
        self._items: list[tuple[Path, Path]] = []

    def add(self, target: Path, data: bytes) -> None:
        if target.is_symlink():
            target = Path(os.path.realpath(target))
        try:
            self._items.append((stage_bytes(target, data), target))
        except EdgeFerError as e:  # a full disk, a folder gone: the output, not the input
            raise OutputError(str(e)) from None

    def commit(self) -> None:
        """Every staged file renamed over its target, or none: the targets that exist are first kept
        under hidden backup names (a hard link where the file system has them, so the target never
        goes missing); a rename that fails puts every old file back (an :class:`OutputError`)."""
        backups: list[tuple[Path, Path]] = []  # (backup, target)
        placed: list[Path] = []
        target = None
        try:
            for _, target in self._items:
                if os.path.lexists(target):
                    backups.append((_keep_aside(target), target))
            for tmp, target in self._items:
                os.replace(tmp, target)
                placed.append(target)
        except OSError as e:
            _roll_back(backups, placed)
            raise OutputError(f"cannot write {target}: {e.strerror or e}") from None
        finally:
            self.discard()
        for backup, _ in backups:
            backup.unlink(missing_ok=True)
        for folder in {t.absolute().parent for t in placed}:
            fsync_dir(folder)

    def discard(self) -> None:
        for tmp, _ in self._items:
            tmp.unlink(missing_ok=True)
        self._items.clear()

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def _backup_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}.old")


def _keep_aside(target: Path) -> Path:
    """The existing ``target`` also under a hidden name beside it (its backup until the commit is
    done): a hard link, else (no hard links: FAT) the file itself renamed. Raises the OSError of a
    file that can be neither linked nor moved (immutable, a read-only folder)."""
    backup = _backup_name(target)
    try:
        os.link(target, backup, follow_symlinks=False)
    except OSError:
        os.rename(target, backup)
    return backup


def _roll_back(backups: list[tuple[Path, Path]], placed: list[Path]) -> None:
    """Undo a commit that failed part-way: every old file back under its name, every new file that
    had no old one removed, best effort."""
    restored = set()
    for backup, target in reversed(backups):
        try:
            os.replace(backup, target)  # a hard link over its own file: nothing moves
        except OSError:
            continue  # the old file stays under its backup name, never removed
        restored.add(target)
        with contextlib.suppress(OSError):
            backup.unlink(missing_ok=True)
    for target in placed:
        if target not in restored:
            with contextlib.suppress(OSError):
                target.unlink()
