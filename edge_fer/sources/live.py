"""Latest-frame semantics for live sources (cameras, streams, picamera2).

A grabber thread reads frames as fast as the device gives them and keeps only the newest; the
consumer always gets a fresh frame, never a stale queued one, and every frame that was replaced
before being consumed is counted as dropped. A capture that fails (raises, or returns nothing) is
closed and reopened with exponential back-off; failures and reopens are logged and counted. A capture
call that never returns (a wedged driver, a stream that keeps its socket open and sends nothing) is
detected by the consumer after ``stall_timeout`` seconds, abandoned and reopened (``stalls``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from edge_fer.errors import SourceError
from edge_fer.sources import Source, SourceMode
from edge_fer.types import Frame

log = logging.getLogger(__name__)


class Capture(Protocol):
    """One opened device. ``grab`` returns (image, source_ts, gray) or raises on failure."""

    def grab(self) -> tuple[np.ndarray, float | None, np.ndarray | None]: ...

    def close(self) -> None: ...


class LiveSource(Source):
    mode = SourceMode.LIVE
    #: abandoned capture calls still blocked after which the source gives up (SourceError)
    max_abandoned = 5

    def __init__(
        self,
        name: str,
        opener: Callable[[], Capture],
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        wait_at_start: bool = False,
        stall_timeout: float = 10.0,
    ):
        self.name = name
        # a daemon waits for a camera that is not there yet (boot order, unplugged USB) instead of
        # exiting; interactive runs fail at once with the reason
        self.wait_at_start = wait_at_start
        self.stall_timeout = float(stall_timeout)
        self._opener = opener
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, float, float | None, np.ndarray | None] | None = None
        self._seq = 0  # frames grabbed
        self._taken = 0  # seq of the last frame handed out
        self._delivered = 0
        self._dropped = 0
        self._errors = 0
        self._reopens = 0
        self._stalls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # grabber generations: a wedged capture call is abandoned by starting a new generation; the old
        # thread closes its capture and ends whenever (if ever) its call returns
        self._gen = 0
        self._busy: dict[int, float] = {}  # generation -> monotonic start of its capture call in progress
        self.connected = False
        self.last_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> None:
        """Open the device and start grabbing. A device that cannot be opened is a clear SourceError,
        or, with ``wait_at_start``, reported and retried with back-off by the grabber thread."""
        cap: Capture | None = None
        try:
            cap = self._opener()
            self.connected = True
        except Exception as e:
            err = e if isinstance(e, SourceError) else SourceError(f"cannot open {self.name}: {e}")
            if not self.wait_at_start:
                raise SourceError(f"{err} (--wait-for-source / source.wait = true keeps retrying)") from None
            self.connected = False
            self._errors += 1
            self.last_error = str(err)
            log.warning("%s; waiting for it (retrying with back-off up to %.0fs)", err, self.backoff_max)
        self._stop.clear()
        self._start_grabber(cap)

    def _start_grabber(self, cap: Capture | None) -> None:
        self._gen += 1
        self._thread = threading.Thread(
            target=self._run, args=(self._gen, cap), name=f"grab-{self.name}-{self._gen}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)  # the thread closes its capture (unless its call is wedged)
            self._thread = None

    @staticmethod
    def _close_cap(cap: Capture | None, name: str) -> None:
        if cap is not None:
            try:
                cap.close()
            except Exception as e:  # pragma: no cover - best effort
                log.debug("closing %s: %s", name, e)

    @property
    def finished(self) -> bool:
        return self._stop.is_set()

    # -- grabber thread ------------------------------------------------------------------------
    def _call(self, gen: int, fn: Callable[[], Any]) -> Any:
        """``fn()`` with its start time published for :meth:`_check_stall`."""
        self._busy[gen] = time.monotonic()
        try:
            return fn()
        finally:
            self._busy.pop(gen, None)

    def _run(self, gen: int, cap: Capture | None) -> None:
        delay = self.backoff_initial
        try:
            while not self._stop.is_set() and gen == self._gen:
                if cap is None:
                    try:
                        cap = self._call(gen, self._opener)
                    except Exception as e:
                        if gen != self._gen:
                            break
                        self._errors += 1
                        self.last_error = str(e)
                        log.warning("source %s: reopen failed (%s); retrying in %.1fs", self.name, e, delay)
                        self._stop.wait(delay)
                        delay = min(self.backoff_max, delay * 2)
                        continue
                    if gen != self._gen:
                        break
                    self._reopens += 1
                    self.connected = True
                    log.warning("source %s reopened (reopen #%d)", self.name, self._reopens)
                    delay = self.backoff_initial
                try:
                    image, source_ts, gray = self._call(gen, cap.grab)
                except Exception as e:
                    if self._stop.is_set() or gen != self._gen:
                        break
                    self._errors += 1
                    self.last_error = str(e)
                    self.connected = False
                    log.warning("source %s failed (%s); reopening in %.1fs", self.name, e, delay)
                    self._close_cap(cap, self.name)
                    cap = None
                    self._stop.wait(delay)
                    delay = min(self.backoff_max, delay * 2)
                    continue
                if gen != self._gen:  # abandoned while it was blocked: its frame is not trusted
                    break
                ts = time.time()
                with self._cond:
                    if self._latest is not None and self._seq > self._taken:
                        self._dropped += 1
                    self._seq += 1
                    self._latest = (image, ts, source_ts, gray)
                    self._cond.notify_all()
        finally:
            self._close_cap(cap, self.name)

    def _check_stall(self) -> None:
        """A capture call (grab or reopen) that has not returned for ``stall_timeout`` seconds: a wedged
        driver or a stream that keeps its socket open and sends nothing. Abandon it (its thread ends
        whenever the call returns) and reopen in a new grabber; give up when too many are stuck."""
        since = self._busy.get(self._gen)
        if not self.stall_timeout or since is None:
            return
        waited = time.monotonic() - since
        if waited < self.stall_timeout:
            return
        self._stalls += 1
        self._errors += 1
        self.connected = False
        self.last_error = f"the capture call has not returned for {waited:.1f}s"
        stuck = sum(1 for g in self._busy if g != self._gen) + 1
        if stuck > self.max_abandoned:
            self._stop.set()
            raise SourceError(
                f"source {self.name}: {stuck} capture calls have not returned (the longest for more than "
                f"{waited:.0f}s): the device or driver is wedged"
            )
        log.warning(
            "source %s: no frame, the capture call has not returned for %.1fs (a wedged camera or a stalled "
            "stream): abandoning it and reopening (stall #%d, source.stall_timeout = %g)",
            self.name,
            waited,
            self._stalls,
            self.stall_timeout,
        )
        self._start_grabber(None)

    # -- consumer ------------------------------------------------------------------------------
    def read(self, timeout: float | None = 1.0) -> Frame | None:
        """The newest frame not yet handed out; ``None`` on timeout or after close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._seq <= self._taken:
                if self._stop.is_set():
                    return None
                self._check_stall()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 0.5) if remaining is not None else 0.5)
            assert self._latest is not None  # set with every _seq step, never cleared
            image, ts, source_ts, gray = self._latest
            self._taken = self._seq
        f = Frame(image, self._delivered, ts, source_ts, gray)
        self._delivered += 1
        return f

    def stats(self) -> dict[str, Any]:
        return {
            "frames": self._delivered,
            "captured": self._seq,
            "dropped": self._dropped,
            "errors": self._errors,
            "reopens": self._reopens,
            "stalls": self._stalls,
            "connected": self.connected,
        }
