"""Hostile clients of the live page and preview, through real sockets, while the real pipeline runs
(shared video, shipped model, TFLite): a viewer that never reads, more viewers than allowed, long URLs
and headers, wrong tokens, half-sent requests. The frame loop must keep going through all of it, a
reading viewer must keep getting frames, and the refusals must be logged. (How fast the loop goes
with viewers is measured by benchmarks/live_page.py, not asserted here.)
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import pytest

from edge_fer import config as cfgmod
from edge_fer.daemon import Daemon
from edge_fer.pipeline import Pipeline
from edge_fer.sinks.http import HttpSink
from tests.test_reliability_net import free_port, wait_for

TOKEN = "hostile-test-token-0123456789"


def raw(port: int, request: bytes, *, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(request)
    return s


def status_of(s: socket.socket) -> int:
    line = s.recv(64).split(b"\r\n", 1)[0]
    return int(line.split()[1])


def get(path: str, headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()


AUTH = f"Authorization: Bearer {TOKEN}\r\n"


class Reader(threading.Thread):
    """A well-behaved preview viewer: counts the JPEG parts it reads."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = raw(port, get("/stream.mjpg", AUTH))
        self.parts = 0
        self.stop = False

    def run(self) -> None:
        buf = b""
        while not self.stop:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            self.parts += buf.count(b"Content-Type: image/jpeg")
            buf = buf[-64:]


@pytest.fixture
def running(hamilton_clip, tmp_path):
    cfg = cfgmod.Config()
    cfg.source.uri, cfg.source.loop = str(hamilton_clip), True
    cfg.output.path = os.devnull
    cfg.http.port = free_port()
    cfg.http.token = TOKEN
    cfg.http.preview, cfg.http.preview_fps, cfg.http.preview_max_viewers = True, 10.0, 2
    cfgmod.validate(cfg)
    pipe = Pipeline.from_config(cfg)
    sink = next(s for s in pipe.sinks if isinstance(s, HttpSink))
    daemon = Daemon(pipe, max_frames=0)
    t = threading.Thread(target=daemon.run, daemon=True)
    t.start()
    assert wait_for(lambda: pipe.frames > 10, 60), "the pipeline did not start"
    yield pipe, sink
    daemon.stop()
    t.join(30)
    assert not t.is_alive(), "the frame loop did not stop"


def test_hostile_clients_do_not_stall_the_frame_loop(running, caplog):
    caplog.set_level(logging.INFO)
    pipe, sink = running
    port = sink.port
    open_socks: list[socket.socket] = []
    try:
        # a viewer that never reads, with a tiny receive buffer: its socket fills at once
        stuck = raw(port, get("/stream.mjpg", AUTH), rcvbuf=4096)
        open_socks.append(stuck)
        reader = Reader(port)
        reader.start()
        assert wait_for(lambda: sink.preview is not None and sink.preview.stats().viewers == 2, 10)

        # more viewers than allowed: refused at once, and logged
        extra = [raw(port, get("/stream.mjpg", AUTH)) for _ in range(10)]
        open_socks += extra
        assert [status_of(s) for s in extra] == [503] * 10
        # half-sent requests (slowloris), long URLs and headers, wrong tokens
        open_socks += [raw(port, b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(20)]
        long_url = raw(port, get("/" + "a" * 70_000))
        assert status_of(long_url) == 414
        long_query = raw(port, get("/api/state?" + "x=1&" * 15_000, AUTH))
        assert status_of(long_query) == 200
        open_socks += [long_url, long_query]
        for i in range(30):
            bad = raw(port, get("/api/state", f"Authorization: Bearer wrong-{i}-{'z' * 20}\r\n"))
            assert status_of(bad) == 401
            bad.close()
        huge_cookie = raw(port, get("/", f"Cookie: edge_fer_token_{port}={'q' * 60_000}\r\n"))
        assert status_of(huge_cookie) in (401, 431, 400)
        huge_cookie.close()
        token_in_query = raw(port, get(f"/stream.mjpg?token={'t' * 5000}"))
        assert status_of(token_in_query) == 401
        token_in_query.close()

        # through all of it: the loop goes on, and the reading viewer keeps getting frames
        frames, parts = pipe.frames, reader.parts
        assert wait_for(lambda: pipe.frames >= frames + 100, 60), (frames, pipe.frames)
        assert wait_for(lambda: reader.parts >= parts + 3, 30), (parts, reader.parts)
        assert pipe.errors == 0
        reader.stop = True

        log = caplog.text
        assert "refused a viewer" in log and "http.preview_max_viewers = 2" in log
        assert "refused a request from 127.0.0.1: wrong token" in log
        assert TOKEN not in log
        st = sink.stats()
        assert st.rejected_token >= 31 and sink.preview is not None and sink.preview.stats().refused == 10
        # the server still answers
        ok = raw(port, get("/healthz", AUTH))
        assert status_of(ok) == 200
        ok.close()
    finally:
        for s in open_socks:
            s.close()


def test_stuck_viewer_frees_its_slot(running):
    """A viewer that stops reading is dropped after the socket timeout: its slot comes back."""
    pipe, sink = running
    assert sink.preview is not None
    stuck = raw(sink.port, get("/stream.mjpg", AUTH), rcvbuf=4096)
    try:
        assert wait_for(lambda: sink.preview.stats().viewers == 1, 10)
        assert wait_for(lambda: sink.preview.stats().viewers == 0, 60), "the stuck viewer kept its slot"
        assert pipe.errors == 0
    finally:
        stuck.close()


def test_viewers_that_reload_are_not_refused(running):
    """Viewers that drop their connection abruptly (a page reload, a closed tab) kept their slots until
    the server next wrote to them, so a few quick reloads got 503 with nobody watching."""
    import struct

    _, sink = running
    assert sink.preview is not None
    for i in range(sink.preview.max_viewers + 3):
        s = raw(sink.port, get("/stream.mjpg", AUTH))
        try:
            assert status_of(s) == 200, f"viewer {i} refused"
            s.recv(4096)
        finally:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, as a reload can
            s.close()
