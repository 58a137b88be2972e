"""Latest-frame semantics for live sources (cameras, streams, picamera2).

A grabber thread reads frames as fast as the device gives them and keeps only the newest; the
consumer always gets a fresh frame, never a stale queued one, and every frame that was replaced
before being consumed is counted as dropped. A capture that fails (raises, or returns nothing) is
closed and reopened with exponential back-off; failures and reopens are logged and counted.
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

    def __init__(
        self,
        name: str,
        opener: Callable[[], Capture],
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        wait_at_start: bool = False,
    ):
        self.name = name
        # a daemon waits for a camera that is not there yet (boot order, unplugged USB) instead of
        # exiting; interactive runs fail at once with the reason
        self.wait_at_start = wait_at_start
        self._opener = opener
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self._cap: Capture | None = None
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, float, float | None, np.ndarray | None] | None = None
        self._seq = 0  # frames grabbed
        self._taken = 0  # seq of the last frame handed out
        self._delivered = 0
        self._dropped = 0
        self._errors = 0
        self._reopens = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.last_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> None:
        """Open the device and start grabbing. A device that cannot be opened is a clear SourceError,
        or, with ``wait_at_start``, reported and retried with back-off by the grabber thread."""
        try:
            self._cap = self._opener()
            self.connected = True
        except Exception as e:
            err = e if isinstance(e, SourceError) else SourceError(f"cannot open {self.name}: {e}")
            if not self.wait_at_start:
                raise SourceError(f"{err} (--wait-for-source / source.wait = true keeps retrying)") from None
            self._cap, self.connected = None, False
            self._errors += 1
            self.last_error = str(err)
            log.warning("%s; waiting for it (retrying with back-off up to %.0fs)", err, self.backoff_max)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"grab-{self.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._close_cap()

    def _close_cap(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            try:
                cap.close()
            except Exception as e:  # pragma: no cover - best effort
                log.debug("closing %s: %s", self.name, e)

    @property
    def finished(self) -> bool:
        return self._stop.is_set()

    # -- grabber thread ------------------------------------------------------------------------
    def _run(self) -> None:
        delay = self.backoff_initial
        while not self._stop.is_set():
            if self._cap is None:
                try:
                    self._cap = self._opener()
                    self._reopens += 1
                    self.connected = True
                    log.warning("source %s reopened (reopen #%d)", self.name, self._reopens)
                    delay = self.backoff_initial
                except Exception as e:
                    self._errors += 1
                    self.last_error = str(e)
                    log.warning("source %s: reopen failed (%s); retrying in %.1fs", self.name, e, delay)
                    self._stop.wait(delay)
                    delay = min(self.backoff_max, delay * 2)
                    continue
            try:
                image, source_ts, gray = self._cap.grab()
            except Exception as e:
                if self._stop.is_set():
                    break
                self._errors += 1
                self.last_error = str(e)
                self.connected = False
                log.warning("source %s failed (%s); reopening in %.1fs", self.name, e, delay)
                self._close_cap()
                self._stop.wait(delay)
                delay = min(self.backoff_max, delay * 2)
                continue
            ts = time.time()
            with self._cond:
                if self._latest is not None and self._seq > self._taken:
                    self._dropped += 1
                self._seq += 1
                self._latest = (image, ts, source_ts, gray)
                self._cond.notify_all()

    # -- consumer ------------------------------------------------------------------------------
    def read(self, timeout: float | None = 1.0) -> Frame | None:
        """The newest frame not yet handed out; ``None`` on timeout or after close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._seq <= self._taken:
                if self._stop.is_set():
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining if remaining is not None else 0.5)
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
            "connected": self.connected,
        }
