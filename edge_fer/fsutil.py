"""Atomic file writes: a reader (or a crash) never sees half a file; and where edge-fer keeps its cache.

The data goes to a temporary file in the target's folder, is flushed and fsynced, gets the usual
permissions (``0666 & ~umask``; ``mkstemp`` makes ``0600``) and is then renamed over the target; the
folder is fsynced too (:func:`replace_durably`), since an SD card can lose a rename on a power cut.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edge_fer.errors import EdgeFerError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def stage_bytes(target: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``target`` and return its path (rename it with
    :func:`os.replace` to commit, unlink it to discard). A failed write is an :class:`EdgeFerError`."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise EdgeFerError(f"cannot write {target}: {e.strerror or e}") from None
    return Path(tmp)


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename, a new file) to the disk. Best effort: a file system or
    platform that cannot open or fsync a directory is left as it is."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_durably(src: str | Path, target: str | Path) -> None:
    """:func:`os.replace` followed by an fsync of the target's folder, so that the rename itself
    survives a power cut."""
    os.replace(src, target)
    fsync_dir(Path(target).absolute().parent)


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    tmp = stage_bytes(target, data)
    try:
        replace_durably(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise EdgeFerError(f"cannot write {target}: {e.strerror or e}") from None


def atomic_write_text(target: str | Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | Path, obj: Any, *, indent: int | None = 2) -> None:
    from edge_fer.jsonutil import json_default

    atomic_write_text(target, json.dumps(obj, indent=indent, default=json_default) + "\n")


def cache_dir(service_dirs: bool = False) -> Path:
    """edge-fer's cache folder, one rule for everything kept there (pulled models, the backend probe):
    ``$EDGE_FER_CACHE_DIR`` (or its older name ``$EDGE_FER_CACHE``); with ``service_dirs``, then systemd's
    ``$CACHE_DIRECTORY`` / ``$STATE_DIRECTORY`` (what the service may write); then
    ``$XDG_CACHE_HOME/edge-fer`` when that is absolute (the XDG spec ignores relative ones), else
    ``~/.cache/edge-fer``. Pulled models do not follow the systemd folders, so that a model pulled by
    hand as the service's user is where the service looks."""
    names = ["EDGE_FER_CACHE_DIR", "EDGE_FER_CACHE"]
    if service_dirs:
        names += ["CACHE_DIRECTORY", "STATE_DIRECTORY"]
    for var in names:
        v = os.environ.get(var)
        if v:
            return Path(v.split(":")[0]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "edge-fer"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_output_over_inputs(output: str | Path | None, inputs: Any, flag: str = "--output") -> None:
    """A user mistake (:class:`EdgeFerError`, exit 2) when ``output`` is one of ``inputs`` (the same
    file, through any link), or a folder output lies inside an input folder (it would read its own
    outputs), or an input lies inside a folder output. ``-`` (stdout) and ``None`` are never inputs."""
    if output is None or str(output) in ("", "-"):
        return
    out = Path(output).expanduser()
    out_r = out.resolve()
    for item in inputs:
        if item is None or str(item) in ("", "-"):
            continue
        inp = Path(item).expanduser()
        inp_r = inp.resolve()
        if out_r == inp_r or _same_file(out, inp):
            raise EdgeFerError(f"{flag} {output} is also an input; refusing to overwrite it")
        if inp_r.is_dir() and inp_r in out_r.parents:
            raise EdgeFerError(f"{flag} {output} is inside the input folder {item}; choose a folder outside it")
        if out_r.is_dir() and out_r in inp_r.parents:
            raise EdgeFerError(f"{flag} {output} holds the input {item}; choose another folder")
