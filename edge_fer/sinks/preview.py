"""The live preview (``/stream.mjpg``): annotated JPEG frames, encoded off the frame loop.

Opt-in (``http.preview``): it shows faces. The frame loop's share is :meth:`Preview.offer`: while the
encoder is not waiting for a frame (nobody watches, or the rate limit has not elapsed) it is one
attribute read; otherwise it copies the frame and its boxes and hands them over (at most
``fps`` times a second). One worker thread draws the boxes, track ids, labels and scores, scales the
frame down to ``width`` and encodes it; it sleeps while there is no viewer. Viewers (one server thread
each) wait for the next encoded frame and write it to their socket: a viewer that reads slowly or not
at all only blocks its own thread (until the socket's timeout), never the encoder or the loop. At most
``max_viewers`` are served at once; more are refused (503) and logged.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edge_fer.annotate import draw_faces

log = logging.getLogger(__name__)

BOUNDARY = "edge-fer-frame"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"


@dataclass
class PreviewStats:
    viewers: int = 0
    served: int = 0  # viewers accepted since start
    refused: int = 0  # viewers refused: all slots taken
    encoded: int = 0  # frames encoded


class Preview:
    def __init__(self, fps: float = 5.0, max_viewers: int = 3, width: int = 640, quality: int = 75) -> None:
        self.fps = float(fps)
        self.interval = 1.0 / self.fps
        self.max_viewers = int(max_viewers)
        self.width = int(width)
        self.quality = int(quality)
        self.wanted = False  # the encoder waits for a frame: read by the frame loop without the lock
        self._cond = threading.Condition()
        self._pending: tuple[np.ndarray, list[tuple[tuple[int, int, int, int], str]]] | None = None
        self._jpeg = b""
        self._seq = 0
        self._stats = PreviewStats()
        self._alive: dict[int, Callable[[], bool]] = {}  # viewer thread -> is its connection open
        self._gone: set[int] = set()  # viewer threads told to stop: their connection closed
        self._stopped = False
        self._last_refusal_log = 0.0
        self._thread = threading.Thread(target=self._run, name="edge-fer-preview", daemon=True)
        self._thread.start()
        log.info(
            "live preview on: /stream.mjpg, at most %d viewer(s) at once (http.preview_max_viewers), "
            "<= %g frames/s encoded while someone watches",
            self.max_viewers,
            self.fps,
        )

    # -- the frame loop ---------------------------------------------------------------------------
    def offer(self, image: np.ndarray, faces: Sequence[tuple[tuple[int, int, int, int], str]]) -> None:
        """Hand a frame to the encoder if it waits for one (call only when :attr:`wanted`)."""
        pending = (image.copy(), list(faces))  # the source may reuse its buffer
        with self._cond:
            if not self.wanted:
                return
            self.wanted = False
            self._pending = pending
            self._cond.notify_all()

    # -- viewers (server threads) -------------------------------------------------------------------
    def join(self, client: str, alive: Callable[[], bool] | None = None) -> bool:
        """Take a viewer slot; False (logged) when all ``max_viewers`` are taken. ``alive()``: whether
        this viewer's connection is still open; when all slots are taken, viewers that have gone (a
        reload, a closed tab: noticed otherwise only at their next write) are let go first."""
        with self._cond:
            if self._stopped:
                return False
            if self._stats.viewers >= self.max_viewers:
                self._reclaim()
            if self._stats.viewers >= self.max_viewers:
                self._stats.refused += 1
                refused, now = self._stats.refused, time.monotonic()
                loud = now - self._last_refusal_log >= 60.0
                if loud:
                    self._last_refusal_log = now
            else:
                if alive is not None:
                    self._alive[threading.get_ident()] = alive
                self._stats.viewers += 1
                self._stats.served += 1
                n = self._stats.viewers
                self._cond.notify_all()
                refused = -1
        if refused >= 0:
            (log.warning if loud else log.debug)(
                "live preview: refused a viewer from %s: %d already watching (http.preview_max_viewers = %d; "
                "%d refused since start)",
                client,
                self.max_viewers,
                self.max_viewers,
                refused,
            )
            return False
        log.info("live preview: viewer from %s connected (%d of at most %d)", client, n, self.max_viewers)
        return True

    def _reclaim(self, wait: float = 1.0) -> None:
        """(Lock held.) Tell viewers whose connection has closed to stop, and wait up to ``wait`` s for
        their slots."""
        gone = {tid for tid, alive in self._alive.items() if not _safe(alive)}
        if not gone:
            return
        self._gone |= gone
        self._cond.notify_all()
        self._cond.wait_for(lambda: self._stats.viewers < self.max_viewers, wait)

    def leave(self, client: str) -> None:
        with self._cond:
            tid = threading.get_ident()
            self._alive.pop(tid, None)
            self._gone.discard(tid)
            self._stats.viewers = max(0, self._stats.viewers - 1)
            n = self._stats.viewers
            self._cond.notify_all()
        log.info("live preview: viewer from %s left (%d watching)", client, n)

    def next_frame(self, after: int, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """The newest JPEG once its number is above ``after`` (``(seq, jpeg)``); ``(after, b"")`` when
        none came within ``timeout``; None once the preview is stopped or this viewer was let go."""
        tid = threading.get_ident()
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after or self._stopped or tid in self._gone, timeout)
            if self._stopped or tid in self._gone:
                return None
            return (self._seq, self._jpeg) if self._seq > after else (after, b"")

    def stats(self) -> PreviewStats:
        with self._cond:
            return PreviewStats(**vars(self._stats))

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self.wanted = False
            self._cond.notify_all()
        self._thread.join(timeout=2.0)

    # -- the encoder thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        due = 0.0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopped or self._stats.viewers > 0)
                if self._stopped:
                    return
                wait = due - time.monotonic()
                if wait > 0:  # the rate limit: nothing asked of the loop before the next slot
                    self._cond.wait(wait)
                    continue
                self.wanted = True
                self._cond.wait_for(lambda: self._pending is not None or self._stopped, 1.0)
                self.wanted = False
                pending, self._pending = self._pending, None
            if pending is None:
                continue
            due = time.monotonic() + self.interval
            try:
                jpeg = self._encode(*pending)
            except Exception:  # noqa: BLE001 (a bad frame must not end the preview)
                log.exception("live preview: encoding a frame failed")
                continue
            with self._cond:
                self._jpeg = jpeg
                self._seq += 1
                self._stats.encoded += 1
                self._cond.notify_all()

    def _encode(self, image: np.ndarray, faces: list[tuple[tuple[int, int, int, int], str]]) -> bytes:
        import cv2

        img = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image
        boxes = [b for b, _ in faces]
        h, w = img.shape[:2]
        if self.width and w > self.width:
            s = self.width / w
            img = cv2.resize(img, (self.width, max(1, round(h * s))), interpolation=cv2.INTER_AREA)
            boxes = [(round(x * s), round(y * s), round(bw * s), round(bh * s)) for x, y, bw, bh in boxes]
        draw_faces(img, boxes, [c for _, c in faces])
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError("cv2.imencode failed")
        return buf.tobytes()


def part(jpeg: bytes) -> bytes:
    """One part of the ``multipart/x-mixed-replace`` stream."""
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
    return head + jpeg + b"\r\n"


def caption(track_id: int, label: str, score: float | None) -> str:
    return f"#{track_id} {label}" + (f" {score:.2f}" if score is not None else "")


__all__ = ["BOUNDARY", "CONTENT_TYPE", "Preview", "PreviewStats", "caption", "part"]


def _safe(alive: Callable[[], bool]) -> bool:
    try:
        return bool(alive())
    except Exception:  # noqa: BLE001 (a check that fails says nothing: keep the viewer)
        return True


def socket_open(sock: socket.socket) -> Callable[[], bool]:
    """Whether the peer of ``sock`` still has it open, without blocking or consuming anything: a
    closed or reset connection reads as end of file or an error."""

    def alive() -> bool:
        try:
            # select first: a socket with a timeout waits for data even with MSG_DONTWAIT
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return True  # open, nothing sent: a viewer
            return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))  # b"": the peer closed
        except (BlockingIOError, InterruptedError):
            return True
        except (OSError, ValueError):  # reset, or already closed here
            return False

    return alive
