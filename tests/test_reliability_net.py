"""Reliability of `edge-fer run` at its network and input edges, through the installed entry point.

* a frozen MQTT broker (a real mosquitto stopped with SIGSTOP) does not slow the frame loop: the
  stall is detected and reported, the queue stays bounded, and after SIGCONT every event that the
  bounded-queue policy did not drop (and count) is delivered;
* credentials never reach stderr, errors, /metrics, /healthz, /latest or --print-config;
* the HTTP endpoint answers only Host names of this device (DNS rebinding) and answers HEAD like GET;
* an image that declares more pixels than ``source.max_pixels`` is refused from its header, before it
  is decoded (a 400 KB PNG of 20000 x 20000 pixels took 4.6 GB and 18 s before).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
import zlib
from pathlib import Path

import pytest

from tests.cli import EDGE_FER
from tests.conftest import shared_file

CLI = [EDGE_FER]
# The same entry point, recording the process's own peak memory (VmHWM) at exit into $EDGE_FER_TEST_PEAK.
# wait4()'s ru_maxrss cannot be used: it keeps the high-water mark of the forked pytest process (over 1 GB
# once TensorFlow is loaded by other tests) across exec.
PEAK_CLI = [
    sys.executable,
    "-c",
    (
        "import atexit, os, sys\n"
        "def _peak():\n"
        "    with open('/proc/self/status') as f:\n"
        "        kb = next(int(l.split()[1]) for l in f if l.startswith('VmHWM:'))\n"
        "    with open(os.environ['EDGE_FER_TEST_PEAK'], 'w') as f:\n"
        "        f.write(str(kb))\n"
        "atexit.register(_peak)\n"
        "from edge_fer.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    ),
]


def peak_mb(path: Path) -> float:
    return int(path.read_text()) / 1024


SECRETS = ("S3cretPW", "QueryPW9", "MqttPW-77")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


class Run:
    """`edge-fer run ...` in a subprocess; stderr goes to a file (read it with ``.err()``)."""

    def __init__(
        self,
        tmp: Path,
        *args: str,
        root: tuple[str, ...] = (),
        env: dict | None = None,
        measure_peak: bool = False,
        cwd: Path | None = None,
    ):
        self.errf = tmp / f"stderr-{uuid.uuid4().hex[:6]}.txt"
        self.peakf = tmp / f"peak-{uuid.uuid4().hex[:6]}.txt"
        cli = PEAK_CLI if measure_peak else CLI
        with open(self.errf, "wb") as ef:
            self.proc = subprocess.Popen(
                [*cli, *root, "run", *args],
                stdout=subprocess.DEVNULL,
                stderr=ef,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "EDGE_FER_TEST_PEAK": str(self.peakf), **(env or {})},
                cwd=cwd,
            )
        self.rusage = None

    def peak_mb(self) -> float:
        """The child's own peak resident memory (needs ``measure_peak=True``)."""
        return peak_mb(self.peakf)

    def err(self) -> str:
        return self.errf.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        """Exit code; the child's own peak memory is kept in ``.rusage`` (os.wait4)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.rusage = ru
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                return self.proc.returncode
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"edge-fer run did not finish within {timeout}s:\n{self.err()[-3000:]}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.returncode is None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def get(port: int, path: str, host: str | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {} if host is None else {"Host": host}
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def metrics(port: int) -> dict[str, float]:
    """/metrics as {'name{labels}': value}; {} while the server is not up yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def toml_str(s: str | Path) -> str:
    return json.dumps(str(s))


# -- 4. a frozen broker does not slow the frame loop -------------------------------------------------


from tests.test_sink_mqtt import Broker, Subscriber, needs_broker  # noqa: E402


@pytest.fixture
def mosquitto(tmp_path):
    """A real broker, always resumed (SIGCONT) and stopped at the end, whatever failed."""
    b = Broker(tmp_path / "broker").start()
    yield b
    if b.proc is not None:
        b.proc.send_signal(signal.SIGCONT)
    b.stop()


@pytest.fixture
def subscriber_factory():
    subs = []
    yield lambda port, pattern: subs.append(Subscriber(port, pattern)) or subs[-1]
    for s in subs:
        s.close()


@needs_broker
def test_frozen_broker_is_detected_bounded_and_loses_nothing(tmp_path, mosquitto, subscriber_factory):
    clip = shared_file("video/hamilton_clip.mp4")
    broker = mosquitto
    topic = f"rel-{uuid.uuid4().hex[:8]}"
    sub = subscriber_factory(broker.port, f"{topic}/events")
    http_port, queue_size = free_port(), 25
    out = tmp_path / "events.jsonl"
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"[source]\nuri = {toml_str(clip)}\nloop = true\n"
        f"[output]\npath = {toml_str(out)}\nper_frame = true\n"  # an event per face per frame
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\ntopic = "{topic}"\n'
        f"queue_size = {queue_size}\nack_timeout = 1.0\n"
        f"[http]\nport = {http_port}\n"
    )
    run = Run(tmp_path, "--config", str(cfg))
    sent = 'edge_fer_sink_sent_total{sink="mqtt"}'
    stalled = 'edge_fer_sink_stalled{sink="mqtt"}'
    connected = 'edge_fer_sink_connected{sink="mqtt"}'
    queued = 'edge_fer_sink_queued{sink="mqtt"}'
    inflight = 'edge_fer_sink_inflight{sink="mqtt"}'
    dropped = 'edge_fer_sink_dropped_total{sink="mqtt"}'
    try:
        assert wait_for(lambda: metrics(http_port).get(sent, 0) > 0, 60), run.err()[-3000:]
        broker.proc.send_signal(signal.SIGSTOP)  # the broker keeps its socket open and answers nothing
        try:
            assert wait_for(lambda: metrics(http_port).get(stalled) == 1, 15), (metrics(http_port), run.err()[-2000:])
            m = metrics(http_port)
            assert m[connected] == 0  # no longer "connected=1, queued=0" while nothing is acknowledged
            frames0 = m["edge_fer_frames_total"]
            worst_queue = worst_inflight = 0.0

            def progressed() -> bool:
                nonlocal worst_queue, worst_inflight
                mm = metrics(http_port)
                worst_queue = max(worst_queue, mm[queued])
                worst_inflight = max(worst_inflight, mm[inflight])
                return mm["edge_fer_frames_total"] >= frames0 + 60 and mm[dropped] > 0

            # the frame loop goes on at its own pace (before: one frame per second, each flush waiting
            # for an acknowledgement), and the queue overflows its bound by dropping the oldest events
            assert wait_for(progressed, 30), (metrics(http_port), run.err()[-2000:])
            assert worst_queue <= queue_size and worst_inflight <= 20, (worst_queue, worst_inflight)
            assert metrics(http_port)[stalled] == 1
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        assert wait_for(lambda: metrics(http_port).get(stalled) == 0 and metrics(http_port).get(connected) == 1, 15)
        # the backlog drains (new per-frame events keep coming, so look for an empty queue once)
        assert wait_for(lambda: metrics(http_port).get(queued) == 0, 15)
        code = run.stop()
        err = run.err()
        assert code == 0, err[-3000:]
    finally:
        run.kill()
        broker.proc.send_signal(signal.SIGCONT)
    assert "Traceback" not in err
    assert re.search(r"MQTT sink: broker 127\.0\.0\.1:\d+ has acknowledged nothing for .*stalled", err), err[-3000:]
    assert "answers again" in err and f"MQTT sink: queue full ({queue_size} events)" in err
    assert "not delivered at close" not in err  # close drained what was left
    n_dropped = closed_summary(err)[1]
    assert n_dropped > 0  # the bounded queue overflowed during the stall (and counted it)
    key = lambda e: json.dumps(e, sort_keys=True)  # noqa: E731
    written = {key(json.loads(x)) for x in out.read_text().splitlines()}
    received = lambda: {key(e) for e in sub.events(topic)}  # noqa: E731 (QoS 1: duplicates possible)
    # every event was delivered, or dropped by the bounded queue and counted: none lost silently
    assert wait_for(lambda: len(received()) >= len(written) - n_dropped, 10), (len(received()), n_dropped, len(written))
    time.sleep(0.3)
    assert received() <= written and len(received()) == len(written) - n_dropped


def closed_summary(err: str) -> tuple[int, int]:
    """(sent, dropped) from the summary line the MQTT sink logs when it closes."""
    m = re.findall(r"MQTT sink: closed: (\d+) sent, (\d+) dropped", err)
    assert m, err[-2000:]
    return int(m[-1][0]), int(m[-1][1])


# -- 8. credentials never printed --------------------------------------------------------------------


def cam_url(port: int) -> str:
    return f"rtsp://admin:S3cretPW@127.0.0.1:{port}/x?user=admin&password=QueryPW9"


def assert_no_secret(text: str) -> None:
    for s in SECRETS:
        assert s not in text, f"secret {s!r} printed:\n{text[-3000:]}"


def test_camera_password_not_in_error_nor_traceback(tmp_path):
    for debug in ([], ["--debug"]):
        proc = subprocess.run(
            [*CLI, *debug, "run", "--source", cam_url(free_port())], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == (1 if debug else 2), proc.stderr[-2000:]  # --debug: the traceback
        assert_no_secret(proc.stdout + proc.stderr)
        if not debug:
            assert "Traceback" not in proc.stderr
            last = proc.stderr.strip().splitlines()[-1]
            assert last.startswith("edge-fer: error:") and "rtsp://admin:***@127.0.0.1" in last, last


def test_secrets_not_in_retry_logs_status_metrics(tmp_path):
    http_port = free_port()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[source]\nuri = "{cam_url(free_port())}"\nwait = true\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\nusername = "u"\npassword = "MqttPW-77"\n'
        f"[http]\nport = {http_port}\n[run]\nstatus_interval_s = 0.2\n"
    )
    run = Run(tmp_path, "--config", str(cfg), root=("--verbose",))  # debug-level logs too
    try:
        # a few retry lines of the camera, and failed connects of the MQTT sink
        assert wait_for(lambda: run.err().count("reopen failed") >= 2, 30), run.err()[-3000:]
        paths = ("/metrics", "/healthz", "/latest", "/", "/app.js", "/api/state")
        bodies = "".join(get(http_port, p)[2].decode() for p in paths)
        assert 'source="rtsp://admin:***@127.0.0.1' in bodies and "password=***" in bodies
        assert '"source": "rtsp://admin:***@127.0.0.1' in get(http_port, "/api/state")[2].decode()
        assert run.stop() == 0
    finally:
        run.kill()
    err = run.err()
    assert "reopen failed" in err and "rtsp://admin:***@" in err
    assert_no_secret(err + bodies)


def test_print_config_and_config_errors_hide_secrets(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[source]\nuri = "{cam_url(9)}"\n[mqtt]\nhost = "broker"\npassword = "MqttPW-77"\n')
    proc = subprocess.run(
        [*CLI, "run", "--config", str(cfg), "--print-config"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert_no_secret(proc.stdout + proc.stderr)
    assert 'password = "***"' in proc.stdout and "rtsp://admin:***@127.0.0.1:9/x?user=admin&password=***" in proc.stdout
    # a mistyped password is refused without echoing it
    cfg.write_text('[mqtt]\nhost = "broker"\npassword = 7700.77007\n')
    proc = subprocess.run(
        [*CLI, "run", "--config", str(cfg), "--print-config"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "mqtt.password" in proc.stderr and "7700.77007" not in proc.stderr


def test_redact_helper():
    from edge_fer.redact import redact, redact_config, register_secret

    assert redact("open 'rtsp://admin:p@ss@cam:554/s' failed") == "open 'rtsp://admin:***@cam:554/s' failed"
    assert redact("https://tok3n@example.com/x") == "https://***@example.com/x"
    assert redact("http://cam/video.cgi?user=a&pwd=secret1&x=1") == "http://cam/video.cgi?user=a&pwd=***&x=1"
    assert redact("source http://h/x?pwd=abc9: failed") == "source http://h/x?pwd=***: failed"
    assert redact("no secrets here: a@b, x=1") == "no secrets here: a@b, x=1"
    register_secret("Unique-Secret-42")
    assert redact("boom Unique-Secret-42!") == "boom ***!"
    assert redact_config({"mqtt": {"password": "x", "host": "h"}, "source": {"uri": "rtsp://u:p@h/"}}) == {
        "mqtt": {"password": "***", "host": "h"},
        "source": {"uri": "rtsp://u:***@h/"},
    }


def test_tracebacks_are_redacted_once_installed():
    code = (
        "from edge_fer.redact import install_log_redaction; install_log_redaction()\n"
        "import threading\n"
        "def boom(): raise ValueError('rtsp://admin:S3cretPW@cam/x')\n"
        "t = threading.Thread(target=boom); t.start(); t.join()\n"
        "raise RuntimeError('http://cam/x?password=QueryPW9')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "ValueError: rtsp://admin:***@cam/x" in proc.stderr
    assert "RuntimeError: http://cam/x?password=***" in proc.stderr
    assert_no_secret(proc.stderr)


# -- 9. HTTP: Host check against DNS rebinding, HEAD ---------------------------------------------------


def test_http_host_check_and_head(tmp_path):
    import socket

    http_port = free_port()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[source]\nuri = "rtsp://127.0.0.1:{free_port()}/x"\nwait = true\n'
        f'[http]\nport = {http_port}\nallowed_hosts = "fer.example, .lan.example"\n'
    )
    run = Run(tmp_path, "--config", str(cfg))
    try:
        assert wait_for(lambda: metrics(http_port) != {}, 30), run.err()[-3000:]
        p = http_port
        for host in (
            f"127.0.0.1:{p}",
            f"localhost:{p}",
            "localhost",
            f"[::1]:{p}",
            f"192.168.1.20:{p}",
            f"{socket.gethostname()}:{p}",
            f"fer.example:{p}",
            "cam.lan.example",
            "FER.EXAMPLE.",
        ):
            code, _, body = get(p, "/latest", host)
            assert code == 200 and b"events" in body, host
        for host in (f"evil.example:{p}", "attacker.test", "fer.example.evil.test", "lan.example.evil", ""):
            code, _, body = get(p, "/latest", host)  # a rebound DNS name: refused, nothing leaks
            assert code == 403 and b"events" not in body, host
        code, headers, body = get(p, "/latest", "evil.example", method="HEAD")
        assert code == 403 and body == b""
        for path in ("/metrics", "/healthz", "/latest", "/"):
            gcode, gheaders, gbody = get(p, path)
            hcode, hheaders, hbody = get(p, path, method="HEAD")
            assert hcode == gcode and hbody == b"", path
            assert hheaders["content-type"] == gheaders["content-type"] and int(hheaders["content-length"]) > 0
        assert run.stop() == 0
    finally:
        run.kill()
    err = run.err()
    assert "refused a request" in err and "evil.example" in err and "Traceback" not in err


def test_http_allowed_hosts_star_disables_the_check():
    from edge_fer.config import HttpConfig
    from edge_fer.sinks.http import HttpSink

    sink = HttpSink(HttpConfig(port=0, allowed_hosts="*"))
    try:
        assert get(sink.port, "/", "anything.example")[0] == 200
    finally:
        sink.close()
    sink = HttpSink(HttpConfig(port=0))
    try:
        assert get(sink.port, "/", "anything.example")[0] == 403
        assert sink.stats().rejected_host == 1
    finally:
        sink.close()


# -- 10. huge images refused from their header -------------------------------------------------------


def huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid 8-bit gray PNG of ``width`` x ``height`` zeros in about 400 KB, made in milliseconds: the
    IDAT stream repeats one raw-deflate piece (50 zero rows, flushed to a byte boundary, no reference
    outside itself)."""
    rows = 50
    block = (b"\x00" * (width + 1)) * rows  # filter byte + one row, 50 times
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(height // rows):
        adler = zlib.adler32(block, adler)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    data = b"\x78\xda" + piece * (height // rows) + end + struct.pack(">I", adler)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_huge_png_refused_before_decoding(tmp_path):
    big = huge_png(tmp_path / "huge.png")
    assert big.stat().st_size < 500_000
    run = Run(tmp_path, "--source", str(big), measure_peak=True)
    code = run.wait(60)
    err = run.err()
    peak = run.peak_mb()
    assert peak < 1000, f"{peak:.0f} MB: the image was decoded"  # 4.6 GB before
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert "20000x20000" in err and "source.max_pixels" in err
    assert err.strip().splitlines()[-1].startswith("edge-fer: error:")


def test_huge_image_in_a_folder_is_skipped_others_processed(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    huge_png(folder / "a_huge.png")
    (folder / "b_face.jpg").write_bytes(shared_file("images/obama_240p.jpg").read_bytes())
    out = tmp_path / "o.jsonl"
    run = Run(tmp_path, "--source", str(folder), "--output", str(out), measure_peak=True)
    code = run.wait(60)
    err = run.err()
    assert code == 0 and run.peak_mb() < 1000, err[-2000:]
    assert re.search(r"a_huge\.png is 20000x20000 pixels .* source\.max_pixels = 50000000 .*skipped", err), err
    events = [json.loads(x) for x in out.read_text().splitlines()]
    assert events and {Path(e["image"]).name for e in events if "image" in e} == {"b_face.jpg"}


def test_max_pixels_is_configurable(tmp_path):
    face = shared_file("images/obama.jpg")  # 910 x 1137
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[source]\nuri = {toml_str(face)}\nmax_pixels = 1000000\n")
    proc = subprocess.run([*CLI, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "910x1137" in proc.stderr and "source.max_pixels = 1000000" in proc.stderr
    cfg.write_text(f"[source]\nuri = {toml_str(face)}\nmax_pixels = 0\n")  # 0: no limit
    proc = subprocess.run([*CLI, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-2000:]


@pytest.mark.parametrize(
    "ext,params",
    [
        (".png", []),
        (".jpg", []),
        (".jpg", [2, 1]),
        (".bmp", []),
        (".webp", [64, 101]),
        (".webp", [64, 80]),
        (".tif", []),
        (".pgm", []),
        (".ppm", []),
        (".pbm", []),
        (".pam", []),
    ],
)
def test_image_size_reads_headers_like_opencv(tmp_path, ext, params):
    import cv2
    import numpy as np

    from edge_fer.imageio import image_size

    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    p = tmp_path / f"x{ext}"
    assert cv2.imwrite(str(p), img[:, :, 0] if ext in (".pgm", ".pbm") else img, params)
    assert image_size(p) == (53, 37) == cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape[1::-1]


def test_image_size_unknown_or_damaged_is_none(tmp_path):
    from edge_fer.imageio import image_size, read_image

    p = tmp_path / "x.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0\x00")  # a JPEG cut inside its first segment
    assert image_size(p) is None and read_image(p) is None
    p.write_bytes(b"not an image at all")
    assert image_size(p) is None and read_image(p) is None


def test_eval_skips_a_huge_image_without_decoding_it(tmp_path):
    # `edge-fer eval` (and train) decode user images too (edge_fer.train.data.decode_gray)
    for cls, name, src in (("happy", "a_huge.png", None), ("happy", "face.jpg", "images/obama_240p.jpg")):
        (tmp_path / "data" / cls).mkdir(parents=True, exist_ok=True)
        dst = tmp_path / "data" / cls / name
        huge_png(dst) if src is None else dst.write_bytes(shared_file(src).read_bytes())
    errf, peakf = tmp_path / "err.txt", tmp_path / "peak.txt"
    with open(errf, "wb") as ef:
        proc = subprocess.Popen(
            [*PEAK_CLI, "eval", "--data", str(tmp_path / "data")],
            stdout=subprocess.PIPE,
            stderr=ef,
            env={**os.environ, "EDGE_FER_TEST_PEAK": str(peakf)},
        )
        out = proc.stdout.read().decode()
        status = proc.wait()
    err = errf.read_text()
    assert status == 0, err[-2000:]
    assert peak_mb(peakf) < 300, peak_mb(peakf)  # about 110 MB; decoding it (gray) takes 400 MB more
    assert "20000x20000 pixels is above the 50000000-pixel limit" in err and "unreadable 1" in out
