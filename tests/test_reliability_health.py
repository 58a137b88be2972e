"""Health that does not lie: a wedged or stalled camera is detected, reopened, and shown as such.

Through the installed ``edge-fer run`` and a real MJPEG stream served on loopback that keeps its socket
open and sends nothing after a few frames (OpenCV's FFmpeg reader then blocks for 30 s in one call).
The systemd watchdog is a real datagram socket (``NOTIFY_SOCKET``), read by the test.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import cv2  # noqa: E402
import pytest

from tests.conftest import shared_file
from tests.test_reliability_net import Run, free_port, get, metrics, wait_for


class MjpegServer:
    """multipart/x-mixed-replace JPEG frames at ``fps``. The first connection sends ``first`` frames and
    then nothing while keeping its socket open (a wedged camera); later connections send frames for ever."""

    def __init__(self, image: Path, first: int = 20, fps: float = 10.0):
        self.jpg = cv2.imencode(".jpg", cv2.imread(str(image)))[1].tobytes()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.first, self.fps = first, fps
        self.connections = 0
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, n: int) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
            k = 0
            while not self.stop.is_set():
                if n == 1 and k >= self.first:
                    self.held.append(conn)  # open, silent
                    return
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(self.jpg)
                conn.sendall(head + self.jpg + b"\r\n")
                k += 1
                time.sleep(1.0 / self.fps)
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        for c in self.held:
            c.close()


class NotifySocket:
    """A systemd-like NOTIFY_SOCKET: records (monotonic time, message) of every datagram."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self.stop = threading.Event()
        threading.Thread(target=self._recv, daemon=True).start()

    def _recv(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def pings(self) -> list[float]:
        return [t for t, m in self.messages if "WATCHDOG=1" in m.split("\n")]

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def stream():
    srv = MjpegServer(shared_file("images/obama_240p.jpg"))
    yield srv
    srv.close()


def test_a_stalled_stream_is_detected_reopened_and_stops_the_watchdog(tmp_path, stream):
    port = free_port()
    notify = NotifySocket(tmp_path / "notify.sock")
    cfg = tmp_path / "run.toml"
    cfg.write_text("[run]\nstatus_interval_s = 1.0\n")
    run = Run(
        tmp_path,
        "--config",
        str(cfg),
        "--source",
        stream.url,
        "--http-port",
        str(port),
        "--stall-timeout",
        "4",
        "-o",
        str(tmp_path / "ev.jsonl"),
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"},  # a ping every 0.5 s
    )
    try:
        assert wait_for(lambda: metrics(port).get("edge_fer_frames_total", 0) >= 10, 60), run.err()
        fps_running = metrics(port)["edge_fer_fps"]
        # the first connection goes silent after 20 frames (2 s): wait until frames stop coming
        assert wait_for(lambda: metrics(port).get("edge_fer_frames_total", 0) >= 20, 30), run.err()
        stalled_at = time.monotonic()
        time.sleep(2.5)
        m = metrics(port)
        assert m["edge_fer_frames_total"] <= 20, "frames came from a silent stream?"
        # the rate covers "up to now": it falls as soon as frames stop (it read the last rate before)
        assert m["edge_fer_fps"] < 0.75 * fps_running, (m["edge_fer_fps"], fps_running)
        assert m["edge_fer_last_frame_age_seconds"] >= 2.0
        # the capture call is abandoned after 4 s and the stream reopened: frames come again
        assert wait_for(lambda: stream.connections >= 2, 15), run.err()
        assert wait_for(lambda: metrics(port).get("edge_fer_frames_total", 0) >= 30, 20), run.err()
        assert get(port, "/healthz")[0] == 200
    finally:
        code = run.stop()
        notify.close()
    err = run.err()
    assert code == 0, err
    assert "the capture call has not returned" in err and "reopening" in err, err
    # the watchdog was not pinged while no frame came (before: every 0.5 s, whatever the camera did)
    pings = notify.pings()
    assert pings, notify.messages
    silent = [t for t in pings if stalled_at + 0.6 < t < stalled_at + 3.5]
    assert not silent, f"watchdog pinged {len(silent)} time(s) while the stream sent nothing"
    # systemd's STATUS line goes on while no frame comes, and says so (it froze at the last frame rate)
    quiet = [m for t, m in notify.messages if stalled_at + 1.2 < t < stalled_at + 3.5 and m.startswith("STATUS=")]
    assert quiet and all("no frame for" in m for m in quiet), notify.messages


class DyingMjpegServer(MjpegServer):
    """Sends ``first`` frames on its first connection, then closes it and stops listening: the
    camera is gone and every reopen is refused."""

    def _serve(self, conn: socket.socket, n: int) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
            for _ in range(self.first):
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(self.jpg)
                conn.sendall(head + self.jpg + b"\r\n")
                time.sleep(1.0 / self.fps)
        except OSError:
            pass
        finally:
            self.sock.close()  # no more connections
            conn.close()


def healthz_code(port: int) -> int | None:
    try:
        return get(port, "/healthz")[0]
    except OSError:  # not listening yet
        return None


def test_healthz_is_503_as_soon_as_the_stream_is_lost(tmp_path):
    """A stream that is gone and whose reopen fails: /healthz says "source-down" at once (it said
    "ok" for up to 10 s, until the last frame grew old)."""
    srv = DyingMjpegServer(shared_file("images/obama_240p.jpg"), first=20, fps=10.0)
    port = free_port()
    run = Run(tmp_path, "--source", srv.url, "--http-port", str(port), "-o", str(tmp_path / "ev.jsonl"))
    try:
        assert wait_for(lambda: healthz_code(port) == 200, 60), run.err()
        assert wait_for(lambda: "reopen failed" in run.err() or "failed" in run.err(), 30), run.err()
        code, _, body = get(port, "/healthz")
        doc = json.loads(body)
        assert code == 503 and doc["status"] == "source-down", doc
        assert doc["last_frame_age_s"] < 10  # before the "stale" rule would have said so
    finally:
        run.stop()
        srv.close()
