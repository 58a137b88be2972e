"""Models fetched when the user asks: ``edge-fer models pull NAME``. YuNet (the default detector) is
shipped inside the package (:mod:`edge_fer.models`); pulling it installs a copy in the cache that the
detector then prefers (an update, when the pin moves to a newer release).

Each known model has pinned download URLs and a pinned SHA-256. :func:`pull` downloads (or, with
``from_file``, copies) into a temporary file next to the destination, hashing as it goes, and only
a file whose hash matches is renamed into place: a checksum mismatch, an interrupted transfer or a
full disk leave nothing behind. A write error of the cache (a full disk) is an OutputError (exit 74)
naming the cache file, and no other mirror is tried after it. A ``--url`` password is sent as basic
authentication and hidden in every message and log line. Nothing is ever downloaded unless
:func:`pull` is called.

Where models live (:func:`models_dir`): ``models/`` in edge-fer's cache folder
(:func:`edge_fer.fsutil.cache_dir`: ``$EDGE_FER_CACHE_DIR``, else ``$XDG_CACHE_HOME/edge-fer``, else
``~/.cache/edge-fer``).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import http.client
import logging
import math
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_fer.errors import ConfigError, ModelError, NetworkError, OutputError
from edge_fer.fsutil import cache_dir, check_input_file, replace_durably
from edge_fer.models import YUNET_SHA256, YUNET_SIZE
from edge_fer.redact import redact, register_uri_secrets

log = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024 * 1024  # a download with no pinned size stops here (--sha256 overrides)
CHUNK = 64 * 1024
MAX_TIMEOUT = 24 * 3600.0  # --timeout: longer ones overflow the socket's and the clock's limits


class DownloadError(NetworkError):
    """A model could not be fetched (no network, server error); nothing was installed. Exit 69."""


class ChecksumError(ModelError):
    """The bytes fetched or copied are not the pinned (or given) SHA-256; nothing was installed."""


class _CacheWriteError(Exception):
    """Writing the ``.part`` file in the cache failed (a full disk): the cache's fault, never the
    network's or the source's, so no other mirror is tried. :func:`pull` makes it an OutputError."""

    def __init__(self, err: OSError):
        super().__init__(err)
        self.err = err


class _Sink:
    """The ``.part`` file being written: every error of a write to it is a :class:`_CacheWriteError`."""

    def __init__(self, f):
        self.f = f

    def write(self, block: bytes) -> None:
        try:
            self.f.write(block)
        except OSError as e:
            raise _CacheWriteError(e) from None

    def restart(self) -> None:
        try:
            self.f.seek(0)
            self.f.truncate()
        except OSError as e:
            raise _CacheWriteError(e) from None

    def finish(self) -> None:
        try:
            self.f.flush()
            os.fsync(self.f.fileno())
        except OSError as e:
            raise _CacheWriteError(e) from None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int | None
    description: str
    source: str  # where the pinned values come from


_OPENCV_ZOO_COMMIT = "82b38c8f98e7b52aa171400f3e4c722352d0669f"

# The OpenCV Zoo YuNet (2023mar, MIT licence). The SHA-256 and size are those of the Git LFS
# pointer of models/face_detection_yunet/face_detection_yunet_2023mar.onnx in
# github.com/opencv/opencv_zoo at commit 82b38c8f98e7b52aa171400f3e4c722352d0669f
# ("oid sha256:8f2383e4...2552fa4", "size 232589"); several independent projects pin the same
# value for the same file. It could not be fetched from this build machine (no network), so the
# bytes themselves were not hashed here: a mismatch is refused, never installed.
KNOWN: dict[str, ModelSpec] = {
    "yunet": ModelSpec(
        name="yunet",
        filename="face_detection_yunet_2023mar.onnx",
        urls=(
            # github.com/<repo>/raw/<commit>/<path> serves the LFS object (raw.githubusercontent.com
            # would serve the 131-byte pointer)
            f"https://github.com/opencv/opencv_zoo/raw/{_OPENCV_ZOO_COMMIT}/models/face_detection_yunet/"
            "face_detection_yunet_2023mar.onnx",
            "https://huggingface.co/opencv/face_detection_yunet/resolve/main/face_detection_yunet_2023mar.onnx",
        ),
        sha256=YUNET_SHA256,
        size=YUNET_SIZE,
        description="YuNet face detector (2023mar; shipped inside edge-fer: pull only to replace it with a newer file)",
        source=f"git LFS pointer in opencv/opencv_zoo@{_OPENCV_ZOO_COMMIT[:12]}",
    ),
}


def models_dir() -> Path:
    return cache_dir() / "models"


def spec(name: str) -> ModelSpec:
    try:
        return KNOWN[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r} (known: {', '.join(KNOWN)})") from None


def installed_path(name: str) -> Path | None:
    """The installed file of model ``name``, or None when it has not been pulled."""
    p = models_dir() / spec(name).filename
    return p if p.is_file() else None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_hex(value: str) -> str:
    v = value.strip().lower()
    if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise ConfigError(f"--sha256 must be 64 hex digits, got {value!r}")
    return v


def check_timeout(timeout: float) -> float:
    """``--timeout``: a finite number of seconds, > 0 and at most a day (ConfigError, exit 2)."""
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise ConfigError(f"--timeout must be a number of seconds > 0 and <= {MAX_TIMEOUT:g}, got {timeout}")
    return float(timeout)


def check_url(url: str) -> str:
    """``--url``: an http(s) URL with a host (and a numeric port, if any), refused before any network
    use (ConfigError, exit 2). Its password is registered as a secret: no message or log shows it."""
    register_uri_secrets(url)
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"--url must be http(s)://..., got {redact(repr(url))}")
    why = ""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError as e:
        why = str(e)
    else:
        if not parts.hostname:
            why = "no host"
        elif any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
            why = "it holds a space or a control character"
    if why:
        raise ConfigError(f"--url {redact(repr(url))} is not a valid URL: {why}")
    return url


def _host(url: str) -> str:
    """The host (and port) of ``url`` for a message: its password hidden, never an exception."""
    try:
        netloc = urllib.parse.urlsplit(url).netloc
    except ValueError:
        netloc = ""
    if not netloc:
        return redact(url)
    user, at, hostport = netloc.rpartition("@")
    if at:  # user:password@ or token@
        name, colon, _ = user.partition(":")
        netloc = f"{name}:***@{hostport}" if colon and name else f"***@{hostport}"
    return redact(netloc)


def _request(url: str) -> urllib.request.Request:
    """A GET of ``url``; a ``user:password@`` in it becomes basic authentication (urllib would take it
    for part of the host name), sent to that host only, not after a redirect."""
    parts = urllib.parse.urlsplit(url)
    auth = None
    if parts.username is not None:
        cred = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(cred.encode()).decode("ascii")
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    req = urllib.request.Request(url, headers={"User-Agent": "edge-fer"})
    if auth:
        req.add_unredirected_header("Authorization", auth)
    return req


def _reason(e: BaseException) -> str:
    """Why a download failed, on one line (urllib's redirect-loop message spans three)."""
    if isinstance(e, http.client.IncompleteRead):
        why = f"transfer cut short ({e.expected} more bytes expected)"
    elif isinstance(e, urllib.error.HTTPError):
        why = f"HTTP {e.code} {e.reason}"
    elif isinstance(e, urllib.error.URLError):
        r = e.reason
        why = getattr(r, "strerror", None) or str(r)
    else:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return redact(" ".join(str(why).split()))


def _copy_hashing(
    read: Callable[[int], bytes],
    out: _Sink,
    limit: int,
    progress: Callable[[int], None] | None,
    deadline: float | None = None,
    timeout: float = 0.0,
    where: str = "",
) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    while True:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"the download took longer than --timeout {timeout:g}s ({n} bytes received)")
        block = read(CHUNK)
        if not block:
            break
        n += len(block)
        if n > limit:
            raise ChecksumError(f"{where}: more than {limit} bytes: not the expected file; nothing installed")
        h.update(block)
        out.write(block)
        if progress:
            progress(n)
    return h.hexdigest(), n


def pull(
    name: str,
    *,
    from_file: str | Path | None = None,
    url: str | None = None,
    sha256: str | None = None,
    verify: bool = True,
    force: bool = False,
    timeout: float = 30.0,
    progress: Callable[[int], None] | None = None,
) -> tuple[Path, str, bool]:
    """Install model ``name``; returns (path, sha256 of the installed bytes, whether it was fetched).

    ``from_file``: copy a local file (offline machines) instead of downloading. ``url``: download
    from there instead of the pinned URLs (a mirror). ``sha256``: expect this hash instead of the
    pinned one (a model you trust by other means); ``verify=False``: accept any bytes (not
    recommended; the hash is still reported). An installed file whose hash is right is kept
    unless ``force``."""
    s = spec(name)
    timeout = check_timeout(timeout)
    if url is not None:
        check_url(url)
    expected: str | None = _check_hex(sha256) if sha256 else s.sha256
    if not verify:
        expected = None
    dest_dir = models_dir()
    dest = dest_dir / s.filename
    if dest.is_file() and not force and not from_file and not url:
        have = sha256_file(dest)
        if expected is None or have == expected:
            return dest, have, False
        log.warning("%s: installed file has sha256 %s, not %s: fetching it again", dest, have, expected)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the model cache {dest_dir}: {e.strerror or e}") from None
    limit = s.size if (s.size and expected == s.sha256) else MAX_BYTES
    _remove_stale_parts(dest_dir, s.filename)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{s.filename}.", suffix=".part", dir=dest_dir)
    except OSError as e:
        raise OutputError(f"cannot write to the model cache {dest_dir}: {e.strerror or e}") from None
    tmp = Path(tmp_name)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while this pull lives: a later pull leaves it alone
    try:
        with os.fdopen(fd, "wb") as f_out:
            out = _Sink(f_out)
            if from_file:
                src = Path(from_file).expanduser()
                check_input_file(src, "--from")  # missing, a FIFO, a folder: says which
                with open(src, "rb") as f:
                    got, n = _copy_hashing(f.read, out, limit, progress, where=str(src))
                where = str(src)
            else:
                got, n, where = _download(s, url, out, limit, timeout, progress)
            out.finish()
        if expected is not None and got != expected:
            hint = (
                " (a Git LFS pointer, not the model: use a URL that serves the LFS object)"
                if n < 1024 and _is_lfs_pointer(tmp)
                else ""
            )
            raise ChecksumError(
                f"{where}: sha256 {got} ({n} bytes) is not the expected {expected}{hint}; nothing installed"
            )
        try:
            os.chmod(tmp, 0o644)
            replace_durably(tmp, dest)
        except OSError as e:
            raise _CacheWriteError(e) from None
    except _CacheWriteError as e:
        tmp.unlink(missing_ok=True)
        # the cache's fault (a full disk): exit 74, whatever the source; no other mirror was tried
        raise OutputError(f"cannot write the model cache file {dest}: {e.err.strerror or e.err}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest, got, not from_file


def _remove_stale_parts(folder: Path, filename: str) -> None:
    """Remove the ``.part`` files of pulls that were killed (SIGKILL, power loss): a running pull holds a
    lock on its own, a dead one does not."""
    for part in folder.glob(f".{filename}.*.part"):
        try:
            fd = os.open(part, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # another pull is writing it
        else:
            part.unlink(missing_ok=True)
            log.info("removed %s, left by an interrupted pull", part)
        finally:
            os.close(fd)


def _is_lfs_pointer(path: Path) -> bool:
    try:
        return path.read_bytes()[:40].startswith(b"version https://git-lfs")
    except OSError:
        return False


def _download(
    s: ModelSpec, url: str | None, out: _Sink, limit: int, timeout: float, progress: Callable[[int], None] | None
) -> tuple[str, int, str]:
    urls = (url,) if url else s.urls
    failures = []
    for u in urls:
        # --timeout bounds each URL's whole transfer, not only each read: a mirror that drips a byte
        # now and then must not keep the pull busy for hours
        deadline = time.monotonic() + timeout
        check_url(u)
        shown = redact(u)  # the URL as messages and logs show it: no password
        try:
            req = _request(u)
            with urllib.request.urlopen(req, timeout=timeout) as r:
                length = r.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > limit:
                    raise ChecksumError(
                        f"{shown}: {length} bytes announced, more than the expected {limit}; nothing installed"
                    )
                out.restart()
                read = getattr(r, "read1", r.read)  # one socket read per call: the deadline is seen
                got, n = _copy_hashing(read, out, limit, progress, deadline, timeout, shown)
                if length and length.isdigit() and n != int(length):
                    raise http.client.IncompleteRead(b"", int(length) - n)
                return got, n, shown
        except ChecksumError:
            raise
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            OSError,
            ValueError,
        ) as e:  # no network, DNS, refused, 404, cut off
            failures.append((_host(u), _reason(e)))
            log.debug("download of %s failed: %s", shown, redact(e))
    reasons = list(dict.fromkeys(r for _, r in failures))
    if len(reasons) == 1:
        tried = f"from {', '.join(h for h, _ in failures)}: {reasons[0]}"
    else:
        tried = "; ".join(f"{h}: {r}" for h, r in failures)
    raise DownloadError(
        f"cannot download {s.name} {tried}. No network? Fetch {s.filename} elsewhere and run "
        f"'edge-fer models pull {s.name} --from FILE'"
    )


def remove(name: str) -> Path | None:
    """Delete the installed file of ``name``; returns its path, or None when none was installed."""
    p = installed_path(name)
    if p is not None:
        p.unlink()
    return p


def describe() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for s in KNOWN.values():
        p = installed_path(s.name)
        try:
            got = sha256_file(p) if p else None
        except OSError:
            got = "unreadable"
        rows.append(
            {
                "name": s.name,
                "installed": str(p) if p else None,
                # the installed file's own hash: not the pinned one for a damaged copy, or a build pulled
                # with --sha256
                "installed_sha256": got,
                "sha256": s.sha256,
                "size": s.size,
                "description": s.description,
                "source": s.source,
            }
        )
    return rows


__all__ = [
    "KNOWN",
    "ModelSpec",
    "DownloadError",
    "ChecksumError",
    "models_dir",
    "installed_path",
    "pull",
    "remove",
    "describe",
    "sha256_file",
]
