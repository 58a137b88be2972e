"""Atomic file writes: a reader (or a crash) never sees half a file; where edge-fer keeps its cache; the
checks that keep a command from blocking on, or reading without bound, what it is given (FIFOs, devices,
huge files); and standard file descriptors that are open before anything else is.

The data goes to a temporary file in the target's folder, is flushed and fsynced, gets the usual
permissions (``0666 & ~umask``; ``mkstemp`` makes ``0600``) and is then renamed over the target; the
folder is fsynced too (:func:`replace_durably`), since an SD card can lose a rename on a power cut.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge_fer.errors import EdgeFerError, OutputError

_SURROGATE = re.compile("[\ud800-\udfff]")


def path_text(value: Any) -> str:
    """A file name (or a text holding one) as text that can be written anywhere (stdout, a CSV or
    JSON file, an event): a byte of the name that is not UTF-8 (Python holds it as a surrogate escape,
    ``\\udcff``) is written as ``\\xNN`` (``x\\xff.jpg``), the way ``backslashreplace`` writes it;
    the rest is left as it is. The one rule for such names in events, tables, CSV and JSON outputs."""
    text = str(value)
    if not _SURROGATE.search(text):
        return text

    def escape(m: re.Match[str]) -> str:
        code = ord(m.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _SURROGATE.sub(escape, text)


_NO_LINK = "its name is not valid UTF-8, which OpenCV cannot take, and no link to it could be made; rename it"


@contextmanager
def opencv_path(path: str | Path) -> Iterator[str]:
    """``path`` as a str that OpenCV's ``VideoCapture`` / ``VideoWriter`` can take (they take no bytes,
    and crash on a str that cannot be encoded as UTF-8: a file name whose bytes are not UTF-8). Such a
    path is given to OpenCV as a link with a plain ASCII name (``media`` plus the file's extension) in a
    private temporary folder, pointing at the file (which need not exist yet: a writer creates it
    through the link); the folder is removed when the block ends. Other paths are given as they are.
    A link that cannot be made is an :class:`EdgeFerError` (exit 2) naming the file (:func:`path_text`)."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield text
        return
    suffix = Path(text).suffix
    if not suffix.isascii():
        suffix = ""
    try:
        folder = tempfile.mkdtemp(prefix="edge-fer-link-")
    except OSError as e:
        raise EdgeFerError(f"cannot open {path_text(text)}: {_NO_LINK} ({e.strerror or e})") from None
    try:
        link = os.path.join(folder, "media" + suffix)
        try:
            os.symlink(os.path.abspath(text), link)
        except OSError as e:
            raise EdgeFerError(f"cannot open {path_text(text)}: {_NO_LINK} ({e.strerror or e})") from None
        yield link
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def stage_bytes(target: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``target`` and return its path (rename it with
    :func:`os.replace` to commit, unlink it to discard). A failed write is an :class:`OutputError`
    (exit 74: a missing folder, a full disk, a read-only file system)."""
    target = Path(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise OutputError(f"cannot write {target}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {e.strerror or e}") from None
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


def probe_folder(folder: str | Path, nbytes: int = 0) -> None:
    """Create ``folder`` if needed and write (then remove) a file of ``nbytes`` zero bytes in it,
    flushed to the disk: whether outputs can go there (an empty file finds a read-only or missing
    folder, a few blocks a full disk). Raises the :class:`OSError` when they cannot."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".edge-fer-write-test-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            if nbytes:
                f.write(b"\0" * nbytes)
                f.flush()
                os.fsync(f.fileno())
    finally:
        probe.unlink(missing_ok=True)


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (a temporary file renamed over it). A target that is a
    link to a regular file keeps its link: the file it points at is replaced. A target that exists and
    is not a regular file (``/dev/null``, ``/dev/stdout``, a FIFO, a device) is written to as it is,
    never replaced by a file; a folder is refused (:class:`EdgeFerError`, exit 2). A write that fails
    is an :class:`OutputError` (exit 74)."""
    target = Path(target)
    try:
        st: os.stat_result | None = os.stat(target)  # follows links
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        _write_in_place(target, data, st.st_mode)
        return
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    tmp = stage_bytes(target, data)
    try:
        replace_durably(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {e.strerror or e}") from None


def _write_in_place(target: Path, data: bytes, mode: int) -> None:
    """Write to an existing non-regular file (a device, a FIFO with a reader): no rename, no fsync.
    A FIFO nobody reads is an error, not a wait."""
    if stat.S_ISDIR(mode):
        raise EdgeFerError(f"cannot write {target}: it is a folder")
    flags = os.O_WRONLY | (os.O_NONBLOCK if stat.S_ISFIFO(mode) else 0)
    try:
        fd = os.open(target, flags)
    except OSError as e:
        why = "a FIFO with no reader" if stat.S_ISFIFO(mode) and e.errno == errno.ENXIO else e.strerror or e
        raise OutputError(f"cannot write {target}: {why}") from None
    try:
        if stat.S_ISFIFO(mode):
            os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as e:
        raise OutputError(f"cannot write {target}: {e.strerror or e}") from None
    finally:
        os.close(fd)


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


def resolve_path(path: Path, flag: str = "") -> Path:
    """``path.resolve()``; a loop of symbolic links (Python raises RuntimeError, not OSError) is a
    user mistake: one line naming the path (:class:`EdgeFerError`, exit 2)."""
    try:
        return path.resolve()
    except RuntimeError:
        raise EdgeFerError(f"{(flag + ' ') if flag else ''}{path}: a loop of symbolic links") from None


def refuse_output_over_inputs(output: str | Path | None, inputs: Any, flag: str = "--output") -> None:
    """A user mistake (:class:`EdgeFerError`, exit 2) when ``output`` is one of ``inputs`` (the same
    file, through any link), or a folder output lies inside an input folder (it would read its own
    outputs), or an input lies inside a folder output. ``-`` (stdout) and ``None`` are never inputs."""
    if output is None or str(output) in ("", "-"):
        return
    out = Path(output).expanduser()
    out_r = resolve_path(out, flag)
    for item in inputs:
        if item is None or str(item) in ("", "-"):
            continue
        inp = Path(item).expanduser()
        inp_r = resolve_path(inp)
        if out_r == inp_r or _same_file(out, inp):
            raise EdgeFerError(f"{flag} {output} is also an input; refusing to overwrite it")
        if inp_r.is_dir() and inp_r in out_r.parents:
            raise EdgeFerError(f"{flag} {output} is inside the input folder {item}; choose a folder outside it")
        if out_r.is_dir() and out_r in inp_r.parents:
            raise EdgeFerError(f"{flag} {output} holds the input {item}; choose another folder")


#: the standard file descriptors (0 stdin, 1 stdout, 2 stderr) that were closed when the process started
CLOSED_STD_FDS: set[int] = set()


def ensure_std_fds() -> set[int]:
    """Put ``/dev/null`` on any of the file descriptors 0, 1, 2 that is closed (``2>&-``, a supervisor
    that closes them), before anything else is opened: otherwise the next file opened (the events file)
    gets number 2 and native code (FFmpeg, OpenCV, LiteRT) writes its diagnostics into it. Returns the
    numbers that were closed (also kept in :data:`CLOSED_STD_FDS`); ``sys.stdout`` stays ``None`` when
    stdout was closed, so that an output to stdout can say so (exit 74) instead of writing to nowhere."""
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(fd)
    for fd in sorted(closed):
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    if 2 in closed and sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    CLOSED_STD_FDS.update(closed)
    return closed


#: the most a config file (TOML) may hold
MAX_CONFIG_BYTES = 1 << 20
#: the most a model file (.tflite, .onnx, a cascade) may hold
MAX_MODEL_BYTES = 512 << 20

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """``"a FIFO (named pipe)"``, ``"a folder"``, ...: what a non-regular file is, for messages."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_input_file(path: str | Path, what: str, max_bytes: int | None = None) -> int:
    """Before reading ``path`` whole: it must be a regular file (a FIFO would block, ``/dev/zero`` never
    ends, a folder cannot be read) of at most ``max_bytes``. Checked with :func:`os.stat`, which never
    blocks; returns the size. Else an :class:`EdgeFerError` naming ``what`` (``--model``, ``--config``)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise EdgeFerError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise EdgeFerError(f"{what} {path} is {file_kind(st.st_mode)}, not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise EdgeFerError(
            f"{what} {path} is {st.st_size:,} bytes, above the limit of {max_bytes:,} bytes for it: not read"
        )
    return st.st_size


def check_model_file(path: str | Path, what: str = "model", fix: str = "") -> None:
    """A model file that a library will open itself (an ONNX detector, a cascade): a regular file of at
    most :data:`MAX_MODEL_BYTES` (a FIFO would block OpenCV, a device would be read for ever), else a
    :class:`~edge_fer.errors.ModelError` naming ``what``, with ``fix`` appended."""
    from edge_fer.errors import ModelError

    try:
        check_input_file(path, what, MAX_MODEL_BYTES)
    except EdgeFerError as e:
        raise ModelError(f"{e}{fix}") from None


def read_model_bytes(path: str | Path, what: str = "model") -> bytes:
    """A model file's bytes (``.tflite``): a regular file of at most :data:`MAX_MODEL_BYTES`, else a
    :class:`~edge_fer.errors.ModelError` (exit 2) that says why, before anything is read."""
    from edge_fer.errors import ModelError

    try:
        return read_input_bytes(path, what, MAX_MODEL_BYTES)
    except EdgeFerError as e:
        raise ModelError(str(e)) from None
    except OSError as e:
        raise ModelError(f"cannot read {what} {path}: {e.strerror or e}") from None


def read_input_bytes(path: str | Path, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (:func:`check_input_file`), read with that
    bound even if the file grows meanwhile."""
    check_input_file(path, what, max_bytes)
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise EdgeFerError(f"{what} {path} is larger than the limit of {max_bytes:,} bytes for it: not read")
    return data
