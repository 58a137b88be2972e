"""systemd integration without a dependency: ``sd_notify`` over the ``NOTIFY_SOCKET`` datagram socket.

With ``Type=notify`` in the unit (deploy/edge-fer.service) the daemon calls:

- :func:`ready` once the first frame went through the pipeline (systemd then reports the unit as started),
- :func:`watchdog` from the processing loop, as often as it likes: pings are rate-limited to half of
  ``WATCHDOG_USEC`` (what ``WatchdogSec=`` sets), so a loop that stalls stops pinging and systemd restarts it,
- :func:`status` with a one-line summary (fps, faces) that ``systemctl status edge-fer`` shows,
- :func:`stopping` when SIGTERM arrives.

Everything is a no-op returning ``False`` when ``NOTIFY_SOCKET`` is unset (running in a terminal, in
tests, under another supervisor) and never raises: a notification that cannot be sent is logged at
debug level. ``NOTIFY_SOCKET`` may be a filesystem path or an abstract-namespace address starting
with ``@``. This is the protocol of sd_notify(3); no libsystemd is needed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

__all__ = [
    "Notifier",
    "notify",
    "ready",
    "status",
    "watchdog",
    "stopping",
    "watchdog_interval",
]


def _socket_address(value: str | None) -> str | bytes | None:
    """The address to send to, or None when the variable is unset or not a unix socket address."""
    if not value:
        return None
    if value.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of the '@'.
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    # systemd also allows vsock:CID:PORT for VMs; not something a Pi daemon meets.
    log.debug("NOTIFY_SOCKET=%r is not a unix socket address; notifications disabled", value)
    return None


class Notifier:
    """The sd_notify client. Module-level functions use one shared instance; tests may make their own.

    The environment is read on every call, so a process that gets ``NOTIFY_SOCKET`` later (or a test
    that sets it with monkeypatch) just works. ``send``: a function that takes each message instead
    of the socket.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, send: Callable[[str], object] | None = None
    ) -> None:
        self._clock = clock
        self._send = send  # instead of the socket (tests, another supervisor)
        self._lock = threading.Lock()
        self._last_ping: float | None = None

    # -- the raw protocol -----------------------------------------------------------------------
    def notify(self, state: str) -> bool:
        """Send ``state`` (newline-separated ``KEY=VALUE`` lines). True when the datagram was sent."""
        if self._send is not None:
            try:
                self._send(state)
                return True
            except Exception as exc:  # a notification never stops the caller
                log.debug("sd_notify(%r) failed: %s", state, exc)
                return False
        addr = _socket_address(os.environ.get("NOTIFY_SOCKET"))
        if addr is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(state.encode("utf-8", "replace"), addr)
            return True
        except OSError as exc:
            log.debug("sd_notify(%r) failed: %s", state, exc)
            return False

    # -- the messages the daemon uses ------------------------------------------------------------
    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (optionally with a STATUS line): the unit is up."""
        msg = "READY=1"
        if status:
            msg += "\nSTATUS=" + _one_line(status)
        return self.notify(msg)

    def status(self, text: str) -> bool:
        """``STATUS=...``: a free-form one-line status shown by ``systemctl status``."""
        return self.notify("STATUS=" + _one_line(text))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: the service is shutting down (e.g. on SIGTERM)."""
        msg = "STOPPING=1"
        if status:
            msg += "\nSTATUS=" + _one_line(status)
        return self.notify(msg)

    def watchdog_interval(self) -> float | None:
        """Seconds between pings: half of ``WATCHDOG_USEC``; None when no watchdog applies to this process."""
        usec = os.environ.get("WATCHDOG_USEC")
        if not usec:
            return None
        pid = os.environ.get("WATCHDOG_PID")
        if pid:
            try:
                if int(pid) != os.getpid():
                    return None
            except ValueError:
                return None
        try:
            value = int(usec)
        except ValueError:
            return None
        if value <= 0:
            return None
        return value / 1e6 / 2.0

    def watchdog(self, force: bool = False) -> bool:
        """``WATCHDOG=1``, at most once per :meth:`watchdog_interval`; cheap to call every frame.

        True when a ping was sent. No-op without ``WATCHDOG_USEC`` (unless ``force``) or ``NOTIFY_SOCKET``.
        """
        interval = self.watchdog_interval()
        if interval is None and not force:
            return False
        now = self._clock()
        with self._lock:
            recent = interval is not None and self._last_ping is not None and now - self._last_ping < interval
            if recent and not force:
                return False
            self._last_ping = now
        return self.notify("WATCHDOG=1")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


_default = Notifier()


def notify(state: str) -> bool:
    return _default.notify(state)


def ready(status: str | None = None) -> bool:
    return _default.ready(status)


def status(text: str) -> bool:
    return _default.status(text)


def stopping(status: str | None = None) -> bool:
    return _default.stopping(status)


def watchdog(force: bool = False) -> bool:
    return _default.watchdog(force)


def watchdog_interval() -> float | None:
    return _default.watchdog_interval()
