"""The shared part of the text-file sinks (JSON lines, CSV): stdout (``-``) or a file.

What these sinks guarantee:

* **A restart never erases earlier output.** A file is opened for appending (``overwrite=True``
  truncates it instead). When the file's last line was left half-written (a crash, a full disk), the
  next line written starts on a new line, so the new run's first line is intact.
* **``sent`` counts lines that reached the file**, not lines handed to a buffer: ``emit`` queues the
  line in memory and ``flush`` (the pipeline calls it after every frame that has events) hands the
  queued lines to the OS with ``os.write``, so a short write or an error tells exactly which lines
  got through.
* **A failed write is counted and said**: ``errors`` +1 per failed attempt, a log line for the first
  one and then at most one every :attr:`TextFileSink.log_every_s`. The lines stay queued and are
  written by the next successful flush (at most :attr:`TextFileSink.max_pending` lines: the oldest
  beyond that are dropped and counted in ``dropped``).
* **Log rotation and a deleted file are followed.** At most once a second (on a flush) the path is
  compared with the open file (its inode): when it names another file (logrotate's ``create`` mode renamed ours) or
  none (deleted), the path is opened again (created) and writing goes on there; a file truncated in
  place (``copytruncate``) is written from its new end (the file is opened with ``O_APPEND``). A CSV
  file that starts empty again gets its header row.
* **A sink that cannot write gives up and says so**: on an error that cannot go away (a broken pipe,
  a closed or hung-up output) at once, otherwise after :attr:`TextFileSink.max_consecutive_errors`
  failed writes in a row, or when events are still unwritten at close. :attr:`TextFileSink.failed`
  then holds the reason, everything queued or emitted later is counted as dropped, and the runtime
  ends the run with an error (see :mod:`edge_fer.daemon`).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import time
from pathlib import Path

from edge_fer.errors import ConfigError, write_error
from edge_fer.types import Sink, SinkStats

log = logging.getLogger(__name__)

# errors after which the output can never be written again
_PERMANENT_ERRNOS = {
    errno.EPIPE,
    errno.EBADF,
    errno.EIO,
    errno.ENXIO,
    errno.EINVAL,
    errno.ESHUTDOWN,
    errno.ECONNRESET,
    errno.EROFS,
    errno.EISDIR,
}


def _is_stdout(path: str | Path | None) -> bool:
    return path in (None, "", "-")


def open_output(path: str | Path, overwrite: bool = False) -> int:
    """A write-only file descriptor for ``path`` (parent folders created): appending unless ``overwrite``."""
    p = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | (os.O_TRUNC if overwrite else os.O_APPEND)
    try:
        fifo = stat.S_ISFIFO(os.stat(p).st_mode)
    except OSError:
        fifo = False
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        # a FIFO without a reader would block open() for ever: open it without blocking, which fails at
        # once (ENXIO) when nobody reads; then writes block as usual (back-pressure from the reader)
        fd = os.open(p, flags | (os.O_NONBLOCK if fifo else 0), 0o644)
    except OSError as e:
        if fifo and e.errno == errno.ENXIO:
            raise ConfigError(f"cannot open output {p}: it is a FIFO (named pipe) that nobody reads") from None
        raise write_error(f"cannot open output {p}: {e.strerror or e}", e, ConfigError) from None
    if fifo:
        os.set_blocking(fd, True)
    return fd


class TextFileSink(Sink):
    """The base of the text-file sinks: subclasses turn an event into a line and :meth:`_queue` it."""

    name = "text"
    #: failed writes in a row after which the sink gives up
    max_consecutive_errors = 10
    #: lines kept in memory for a retry while writes fail; older ones are dropped (and counted)
    max_pending = 10_000
    #: at most one warning per this many seconds while writes keep failing
    log_every_s = 10.0
    #: ``emit`` writes by itself once this many bytes are queued
    auto_flush_bytes = 64 * 1024
    #: how often (seconds, checked on a flush) the path is compared with the open file (log rotation)
    reopen_check_s = 1.0

    def __init__(self, path: str | Path | None, overwrite: bool = False):
        self.path = "-" if _is_stdout(path) else str(path)
        self.failed: str | None = None  # why this sink gave up for good (None while it can write)
        self._sent = self._errors = self._dropped = 0
        self._pending: list[tuple[str, bool]] = []  # (text, is an event)
        self._pending_bytes = 0
        self._streak = 0  # failed writes in a row
        self._last_log = -1e18
        self._torn = False  # the output's last line is unfinished: start with a newline
        self._regular = False
        self._size_at_open = 0
        self._last_size = 0
        self._identity = (0, 0)
        self._last_check = 0.0
        self._fd: int | None = None
        if path is None or _is_stdout(path):
            if sys.stdout is None:  # started with stdout closed (>&-): say so now, not lose every event
                from edge_fer.errors import OutputError

                raise OutputError(
                    f"{self.name} output stdout: stdout is closed (started with >&-); give an events file with -o FILE"
                )
            return
        self._fd = open_output(path, overwrite)
        st = os.fstat(self._fd)
        self._regular = stat.S_ISREG(st.st_mode)
        self._size_at_open = st.st_size if self._regular else 0
        self._identity = (st.st_dev, st.st_ino)
        self._last_size = st.st_size
        self._last_check = time.monotonic()
        if self._size_at_open:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                self._torn = f.read(1) != b"\n"
            if self._torn:
                log.warning(
                    "%s output %s: its last line is unfinished (an earlier run stopped while writing); "
                    "new lines start on the next line",
                    self.name,
                    self.where,
                )

    @property
    def where(self) -> str:
        return "stdout" if self.path == "-" else self.path

    # -- for subclasses --------------------------------------------------------------------------
    @property
    def appending(self) -> bool:
        """True when the output is a file that already had content (no header needed, say)."""
        return self._size_at_open > 0

    def _queue(self, text: str, event: bool = True) -> None:
        """Queue one line (``text`` ends with its line terminator); ``event``: counts in sent/dropped."""
        if self.failed is not None:
            self._dropped += event
            return
        self._pending.append((text, event))
        self._pending_bytes += len(text)
        if len(self._pending) > self.max_pending:
            old, ev = self._pending.pop(0)
            self._pending_bytes -= len(old)
            self._dropped += ev
        if self._pending_bytes >= self.auto_flush_bytes:
            self.flush()

    # -- Sink ------------------------------------------------------------------------------------
    def _on_new_file(self) -> None:
        """Called when writing starts again on an empty file (rotated, deleted, truncated): a subclass
        queues its header here (at the front of ``_pending``)."""

    def _follow_path(self) -> None:
        """Notice a file truncated in place (every flush); reopen the path when it no longer names the open
        file (rotated away, deleted: checked at most every :attr:`reopen_check_s` seconds)."""
        if self._fd is None:
            return
        try:  # every flush (one fstat): a file truncated in place (copytruncate) gets its header again
            size = os.fstat(self._fd).st_size
            if size < self._last_size:
                log.info("%s output %s: truncated (copytruncate?): writing on at its new end", self.name, self.where)
                self._torn = False
                if size == 0:
                    self._on_new_file()
            self._last_size = size
        except OSError:
            pass
        now = time.monotonic()
        if now - self._last_check < self.reopen_check_s:
            return
        self._last_check = now
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:
                return
        except FileNotFoundError:
            st = None
        except OSError:
            return  # cannot tell (a folder made unreadable): keep writing where we are
        why = "deleted" if st is None else "replaced by another file (rotated)"
        try:
            fd = open_output(self.path)
        except Exception as e:
            log.warning("%s output %s: %s, and it cannot be opened again: %s", self.name, self.where, why, e)
            return
        old, self._fd = self._fd, fd
        try:
            os.close(old)
        except OSError:
            pass
        nst = os.fstat(fd)
        self._identity, self._last_size = (nst.st_dev, nst.st_ino), nst.st_size
        self._torn = False
        log.info("%s output %s: %s; opened it again", self.name, self.where, why)
        if nst.st_size == 0:
            self._on_new_file()

    def flush(self) -> None:
        if self.failed is not None or not self._pending:
            return
        if self._regular:
            self._follow_path()
        prefix = b"\n" if self._torn else b""
        chunks = [t.encode("utf-8") for t, _ in self._pending]
        data = prefix + b"".join(chunks)
        done, err = self._write_all(data)
        self._last_size += done
        if done >= len(prefix):
            self._torn = False
        body = max(0, done - len(prefix))
        # which lines got through whole
        k = 0
        while k < len(chunks) and body >= len(chunks[k]):
            body -= len(chunks[k])
            k += 1
        for _, ev in self._pending[:k]:
            self._sent += ev
        if body:  # line k is in the output only in part
            self._cut_partial_line(body)
        del self._pending[:k]
        self._pending_bytes = sum(len(t) for t, _ in self._pending)
        if err is None:
            if self._streak:
                log.info(
                    "%s output %s: writing again after %d failed write(s); %d event(s) dropped so far",
                    self.name,
                    self.where,
                    self._streak,
                    self._dropped,
                )
            self._streak = 0
            return
        self._errors += 1
        self._streak += 1
        reason = (err.strerror or str(err)) if isinstance(err, OSError) else str(err)
        permanent = not isinstance(err, OSError) or err.errno in _PERMANENT_ERRNOS
        if permanent or self._streak >= self.max_consecutive_errors:
            what = "cannot write" if permanent else f"{self._streak} writes in a row failed"
            self._give_up(f"{what} ({reason})")
            return
        now = time.monotonic()
        if self._streak == 1 or now - self._last_log >= self.log_every_s:
            self._last_log = now
            log.warning(
                "%s output %s: write failed (%s); %d event(s) kept for a retry, %d dropped so far, %d write error(s)",
                self.name,
                self.where,
                reason,
                len(self._pending),
                self._dropped,
                self._errors,
            )

    def close(self) -> None:
        self.flush()
        if self._pending and self.failed is None:
            self._give_up(f"{len(self._pending)} event(s) still unwritten at the end")
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def stats(self) -> SinkStats:
        return SinkStats(
            sent=self._sent, dropped=self._dropped, errors=self._errors, queued=sum(ev for _, ev in self._pending)
        )

    # -- internals -------------------------------------------------------------------------------
    def _write_all(self, data: bytes) -> tuple[int, BaseException | None]:
        """Write ``data``; (bytes written, the error that stopped it or None)."""
        done = 0
        try:
            fd = self._fd
            if fd is None:  # stdout: its file descriptor when there is one, else the text stream
                out = sys.stdout
                try:
                    fd = out.fileno()
                    out.flush()  # anything printed before goes first
                except (AttributeError, OSError, ValueError):
                    out.write(data.decode("utf-8"))
                    out.flush()
                    return len(data), None
            while done < len(data):
                n = os.write(fd, data[done:])
                if n <= 0:
                    raise OSError(errno.EIO, "the output accepted no bytes")
                done += n
            return done, None
        except (OSError, ValueError) as e:  # ValueError: a closed stream
            return done, e

    def _cut_partial_line(self, nbytes: int) -> None:
        """Remove the ``nbytes`` of an unfinished line just written (regular files), else remember it."""
        if self._regular and self._fd is not None:
            try:
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - nbytes)
                self._last_size -= nbytes
                return
            except OSError:
                pass
        self._torn = True

    def _give_up(self, reason: str) -> None:
        self.failed = reason
        lost = sum(ev for _, ev in self._pending)
        self._dropped += lost
        self._pending.clear()
        self._pending_bytes = 0
        log.error(
            "%s output %s: giving up: %s; %d event(s) dropped in all", self.name, self.where, reason, self._dropped
        )
        if self._fd is None:
            _silence_stdout()


def _silence_stdout() -> None:
    """Point a dead stdout at /dev/null so nothing else (exit-time flush) trips over it."""
    try:
        fd = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except (AttributeError, OSError, ValueError):
        pass
