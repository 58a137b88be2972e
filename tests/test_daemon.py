"""The daemon: signals, systemd notify, clean shutdown with complete output."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from edge_fer.daemon import Daemon
from edge_fer.pipeline import PipelineStatus
from tests.cli import cli_command


class StubPipeline:
    def __init__(self, frames=None):
        self.frames = 0
        self.limit = frames
        self.opened = self.closed = False

    def open(self):
        self.opened = True

    def step(self, timeout=1.0):
        if self.limit is not None and self.frames >= self.limit:
            return False
        time.sleep(0.001)
        self.frames += 1
        return object()

    def close(self):
        self.closed = True

    def failed_output(self):
        return None

    def check_outcome(self):
        pass

    def status(self):
        return PipelineStatus(
            fps=100.0,
            frames=self.frames,
            faces=0,
            low_quality_faces=0,
            dropped_frames=0,
            bad_frames=0,
            dropped_events=0,
            queued_events=0,
            errors=0,
            tracks=0,
            uptime_s=1.0,
            last_frame_ts=None,
            source="stub",
            model="stub",
            stages={},
        )


def test_notify_sequence_and_end_of_stream(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "2000")  # WatchdogSec: a ping at most every 1 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    states = []
    pipe = StubPipeline(frames=50)
    assert Daemon(pipe, notify=states.append, status_interval_s=0.0).run() == 0
    assert pipe.opened and pipe.closed and pipe.frames == 50
    assert states.count("READY=1") == 1
    assert states.index("READY=1") > 0 and "WATCHDOG=1" in states and states[-1] == "STOPPING=1"
    assert any(s.startswith("STATUS=") and "fps" in s for s in states)


def test_sigterm_in_process_finishes_and_closes():
    pipe = StubPipeline()
    d = Daemon(pipe, notify=lambda s: None)
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    assert d.run() == 0
    assert pipe.closed and pipe.frames > 10 and d.signal_received == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_max_frames():
    pipe = StubPipeline()
    assert Daemon(pipe, max_frames=7, notify=lambda s: None).run() == 0
    assert pipe.frames == 7 and pipe.closed


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_stream_subprocess_exit0_complete_output(tmp_path, hamilton_clip, tiny_bundle, sig):
    """The real CLI on a looped video under a fake systemd: READY arrives, SIGTERM/SIGINT mid-stream
    gives exit 0 and complete, parseable output (every face_appeared has its face_left)."""
    sock_path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(sock_path)
    srv.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="2000000", PYTHONUNBUFFERED="1")
    out = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        cli_command(
            "run",
            "--source",
            str(hamilton_clip),
            "--model",
            str(tiny_bundle),
            "--loop",
            "--per-frame",
            "--output",
            str(out),
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        states = []
        while "READY=1" not in states:
            states += srv.recv(4096).decode().split("\n")
        time.sleep(2.5)  # mid-stream: the looped video is being processed (and watchdog pinged)
        while True:
            srv.settimeout(0.2)
            try:
                states += srv.recv(4096).decode().split("\n")
            except TimeoutError:
                break
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.close()
    assert proc.returncode == 0, err
    assert "WATCHDOG=1" in states
    lines = out.read_text().splitlines()
    events = [json.loads(x) for x in lines]  # every line parses
    assert events and all("type" in e and "ts" in e for e in events)
    appeared = sorted(e["track_id"] for e in events if e["type"] == "face_appeared")
    left = sorted(e["track_id"] for e in events if e["type"] == "face_left")
    assert appeared and appeared == left
    assert signal.Signals(sig).name in err


# --- the daemon with a real mosquitto broker -------------------------------------------------------

MOSQUITTO = os.environ.get("MOSQUITTO") or __import__("shutil").which("mosquitto") or "/usr/sbin/mosquitto"


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _wait(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


@pytest.fixture
def mosquitto(tmp_path):
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip(f"mosquitto broker not found at {MOSQUITTO} (apt-get install mosquitto)")
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    import getpass

    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n")
    procs = []

    def start():
        p = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        assert _wait(up, 5), "mosquitto did not start"
        return p

    def stop():
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(5)

    start()
    yield port, start, stop
    stop()


def _subscriber(port: int, topic: str):
    import paho.mqtt.client as mqtt

    got: list[tuple[str, bytes]] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda cl, ud, msg: got.append((msg.topic, msg.payload))
    c.on_connect = lambda cl, ud, flags, rc, props=None: cl.subscribe(f"{topic}/#", qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got


def _daemon(tmp_path, clip, model, port, *extra):
    out = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        cli_command(
            "run",
            "--source",
            str(clip),
            "--model",
            str(model),
            "--loop",
            "--per-frame",
            "--output",
            str(out),
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            str(port),
            "--mqtt-topic",
            "t",
            *extra,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, out


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_mqtt_events_reach_broker_and_offline_on_sigterm(tmp_path, hamilton_clip, tiny_bundle, mosquitto):
    port, _, _ = mosquitto
    client, got = _subscriber(port, "t")
    proc, out = _daemon(tmp_path, hamilton_clip, tiny_bundle, port)
    try:
        assert _wait(lambda: sum(t == "t/events" for t, _ in got) >= 5, 60), (
            proc.stderr.read() if proc.poll() is not None else got
        )
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert _wait(lambda: b"offline" in [p for t, p in got if t == "t/availability"], 5)
    client.loop_stop()
    events = [json.loads(p) for t, p in got if t == "t/events"]
    assert all({"type", "ts"} <= set(e) for e in events)
    assert (b"online") in [p for t, p in got if t == "t/availability"]


def test_broker_stopped_mid_run_loses_no_processing(tmp_path, hamilton_clip, tiny_bundle, mosquitto):
    port, start, stop = mosquitto
    proc, out = _daemon(tmp_path, hamilton_clip, tiny_bundle, port)
    try:
        assert _wait(lambda: len(_lines(out)) >= 20, 60)
        stop()  # broker gone mid-run
        n0 = len(_lines(out))
        assert _wait(lambda: len(_lines(out)) >= n0 + 50, 60), "processing stalled while the broker was down"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(x) for x in _lines(out)]
    frames = sorted({e["frame"] for e in events if e["type"] == "face"})
    assert frames and all(e.get("ts") for e in events)
