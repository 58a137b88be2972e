"""The run loop as a service: signals, systemd notify/watchdog, status lines.

SIGTERM/SIGINT/SIGHUP set a flag; the frame in hand is finished, then the pipeline closes: open
tracks get ``face_left``, sinks are flushed and closed (the MQTT sink publishes "offline" on close),
the camera is released, and the process exits 0. SIGHUP (a closed SSH session or terminal) is a stop,
not a config reload: restart the service to load a new config. A second signal exits at once
(code 128 + the signal number: 129/130/143).

The run also ends when an output gives up for good (a full disk, a closed pipe: see
:mod:`edge_fer.sinks.textfile`): :class:`~edge_fer.errors.OutputError`, exit code 74. A file source
(video, images) that yields no frame at all ends with :class:`~edge_fer.errors.SourceError` (exit 2).

systemd (``Type=notify``, :mod:`edge_fer.systemd`): READY=1 after the first processed frame, WATCHDOG=1
after each processed frame and only then (rate-limited to half of ``WATCHDOG_USEC``): a camera that
gives no frame for ``WatchdogSec`` (a wedged driver, a stalled stream, a source still being waited
for) or a loop that hangs stops the pings and systemd restarts the service. STATUS=... with fps,
STOPPING=1. Outside systemd these are no-ops.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge_fer.systemd import Notifier

if TYPE_CHECKING:
    from edge_fer.config import Config
    from edge_fer.pipeline import Pipeline

log = logging.getLogger(__name__)


class Daemon:
    """Drives a :class:`~edge_fer.pipeline.Pipeline` until its end. ``notify``: a function that takes
    each sd_notify message instead of systemd's socket."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        max_frames: int = 0,
        status_interval_s: float = 10.0,
        notify: Callable[[str], Any] | None = None,
    ):
        self.pipeline = pipeline
        self.max_frames = max_frames
        self.status_interval_s = status_interval_s
        self.notify = Notifier(send=notify)
        self.stop_event = threading.Event()
        self.signal_received: int | None = None
        self._old_handlers: dict[int, Any] = {}

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop_event.is_set():  # second signal: give up at once
            raise SystemExit(128 + signum)
        self.signal_received = signum
        self.stop_event.set()
        log.info("received %s: finishing the current frame", signal.Signals(signum).name)

    def install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
                continue  # started under nohup: keep running when the terminal goes
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def restore_signals(self) -> None:
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)
        self._old_handlers.clear()

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> int:
        """Run until the source ends, ``max_frames``, a signal, or an output that gave up. Returns the
        exit code (0); raises OutputError / SourceError (after closing) as the module docstring says."""
        pipe = self.pipeline
        self.install_signals()
        ready = False
        last_status = time.monotonic()
        try:
            pipe.open()
            self.notify.status("waiting for the first frame")
            while not self.stop_event.is_set():
                r = pipe.step(timeout=0.5)
                if r is False:
                    break
                if pipe.failed_output():
                    break
                if r is not None:  # no frame: no watchdog ping, so a source that stays silent gets us restarted
                    self.notify.watchdog()  # only for a frame that went through the pipeline
                    if not ready:
                        ready = True
                        self.notify.ready()
                        log.info("first frame processed: ready")
                now = time.monotonic()
                # the status line goes on without frames too: its frame rate falls, and it says since when
                if now - last_status >= self.status_interval_s:
                    last_status = now
                    st = pipe.status()
                    lost, waiting = st.dropped_events, st.queued_events
                    silent = ""
                    if r is None:
                        since = f" for {time.time() - st.last_frame_ts:.0f} s" if st.last_frame_ts else " yet"
                        silent = f", no frame{since}"
                    self.notify.status(
                        f"{st.fps:.1f} fps, {st.frames} frames, {st.tracks} faces tracked"
                        + silent
                        + (f", {lost} events dropped" if lost else "")
                        + (f", {waiting} events waiting" if waiting else "")
                    )
                    log.info(
                        "%.1f fps, %d frames, %d dropped, %d bad frames, %d events dropped, %d events waiting, "
                        "%d errors",
                        st.fps,
                        st.frames,
                        st.dropped_frames,
                        st.bad_frames,
                        lost,
                        waiting,
                        st.errors,
                    )
                if self.max_frames and pipe.frames >= self.max_frames:
                    break
        finally:
            self.notify.stopping()
            pipe.close()
            self.restore_signals()
        st = pipe.status()
        extra = "".join(
            f", {n} {what}"
            for n, what in ((st.bad_frames, "unreadable frames skipped"), (st.dropped_events, "events dropped"))
            if n
        )
        log.info(
            "stopped after %d frames (%.1f fps)%s%s",
            st.frames,
            st.fps,
            extra,
            f" on {signal.Signals(self.signal_received).name}" if self.signal_received else "",
        )
        pipe.check_outcome()
        return 0


def run_from_config(cfg: Config) -> int:
    from edge_fer.doctor import startup_backend
    from edge_fer.pipeline import Pipeline
    from edge_fer.redact import install_log_redaction

    install_log_redaction()  # also when used as a library, not only through the CLI
    startup_backend()  # a backend that crashes the process is skipped (child-process probe, cached)
    pipe = Pipeline.from_config(cfg)
    return Daemon(pipe, max_frames=cfg.run.max_frames, status_interval_s=cfg.run.status_interval_s).run()
