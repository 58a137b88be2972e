"""The live page in a real browser: Debian's headless chromium, driven over the DevTools protocol
(:mod:`tests.cdp`), against `edge-fer run` on the shared video with the HTTP sink on a free port.

Skipped, with the reason, only where no chromium is installed (``apt-get install chromium``; the
``EDGE_FER_CHROMIUM`` variable names another binary). With ``EDGE_FER_UPDATE_SCREENSHOT=1`` the page's
screenshot also replaces docs/img/live-page.png.
"""

from __future__ import annotations

import http.client
import os
import re
import time
from pathlib import Path

import pytest

from tests.cdp import Browser, find_chromium
from tests.test_reliability_net import Run, free_port, wait_for
from tests.test_sink_mqtt import MOSQUITTO, Broker

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium found (apt-get install chromium, or set EDGE_FER_CHROMIUM)"
)
REPO = Path(__file__).resolve().parents[1]
TOKEN = "live-page-test-token-0123456789"
MQTT_PASSWORD = "MqttPW-live-77"
FACE_LABEL = "document.querySelector('#faces .face-label')?.textContent"


def request(port: int, path: str, headers: dict | None = None, read: int | None = None):
    """(status, headers, body) of a GET through a real socket; ``read``: at most that many body bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read(read) if read else r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def start_daemon(tmp: Path, port: int, clip: Path, http: str, mqtt: str = "") -> Run:
    cfg = tmp / f"config-{port}.toml"
    cfg.write_text(f"[http]\nport = {port}\n{http}\n{mqtt}\n[run]\nstatus_interval_s = 1.0\n")
    # run beside the clip: the page shows the source as "hamilton_clip.mp4", not this machine's path
    run = Run(tmp, "--config", str(cfg), "--source", clip.name, "--loop", "-o", os.devnull, cwd=clip.parent)
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def healthy() -> bool:
        if run.proc.poll() is not None:
            raise AssertionError(f"edge-fer run exited {run.proc.returncode}:\n{run.err()[-3000:]}")
        try:
            return request(port, "/healthz", headers)[0] == 200
        except OSError:
            return False

    assert wait_for(healthy, 60), run.err()[-3000:]
    return run


@pytest.fixture
def browser():
    b = Browser(CHROMIUM)  # type: ignore[arg-type]
    yield b
    b.close()


@needs_chromium
def test_page_with_token_shows_labels_preview_and_no_errors(tmp_path, hamilton_clip, browser):
    """Bound to every interface with a token and the preview on: without the token the page refuses;
    the ?token= link sets a cookie and drops the token from the URL; a face's label appears within 10 s;
    the preview delivers frames; MQTT shows connected; no console error; no secret in what is served."""
    port = free_port()
    mqtt = ""
    broker = None
    if os.access(MOSQUITTO, os.X_OK):
        broker = Broker(tmp_path / "broker").start()
        mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "cam"\npassword = "{MQTT_PASSWORD}"\n'
    http = f'host = "0.0.0.0"\ntoken = "{TOKEN}"\npreview = true\npreview_fps = 5.0\n'
    run = start_daemon(tmp_path, port, hamilton_clip, http, mqtt)
    base = f"http://127.0.0.1:{port}"
    try:
        # no token: the page (and everything else) refuses
        browser.goto(base + "/")
        assert "Token required" in browser.wait_for("document.body && document.body.innerText", 10)
        for path in ("/", "/api/state", "/stream.mjpg", "/latest", "/metrics", "/healthz"):
            assert request(port, path)[0] == 401, path
            assert request(port, path, {"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401, path
        browser.clear_events()

        # the link with the token: a cookie, then the page without the token in its URL
        browser.goto(f"{base}/?token={TOKEN}")
        label = browser.wait_for(FACE_LABEL, 10)
        assert label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"), label
        assert browser.eval("location.search") == ""
        assert TOKEN not in browser.eval("document.cookie")  # HttpOnly
        assert browser.eval("document.querySelectorAll('#faces .face .bar-row').length") >= 7
        assert browser.wait_for("document.querySelector('#preview img')?.naturalWidth", 10) > 0
        assert browser.wait_for("document.querySelectorAll('#timeline .tl-seg').length", 10) > 0
        assert browser.eval("document.getElementById('conn').textContent") == "live"
        assert browser.wait_for("document.getElementById('health').textContent === 'healthy'", 10)
        if broker is not None:
            assert browser.wait_for(
                "[...document.querySelectorAll('#sinks td')].some(td => td.textContent === 'connected')", 10
            )
        time.sleep(2.0)  # a few more polls and preview frames before the verdicts
        shot = browser.screenshot(tmp_path / "live-page.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("EDGE_FER_UPDATE_SCREENSHOT") == "1":
            save_small_png(shot, REPO / "docs" / "img" / "live-page.png")
        assert browser.console_errors() == []

        # the preview delivers JPEG frames to a script with the bearer token
        status, headers, body = request(port, "/stream.mjpg", {"Authorization": f"Bearer {TOKEN}"}, read=200_000)
        assert status == 200 and headers["content-type"].startswith("multipart/x-mixed-replace")
        assert body.count(b"Content-Type: image/jpeg") >= 2 and b"\xff\xd8" in body

        # nothing secret in what the page shows or fetches
        served = b"".join(
            request(port, p, {"Authorization": f"Bearer {TOKEN}"})[2]
            for p in ("/", "/app.js", "/style.css", "/api/state", "/latest", "/metrics", "/healthz")
        ).decode()
        served += browser.eval("document.documentElement.outerHTML")
        assert MQTT_PASSWORD not in served and TOKEN not in served
        assert TOKEN not in run.err() and MQTT_PASSWORD not in run.err()
        assert re.search(r"live preview on: /stream.mjpg, at most 3 viewer", run.err())
        assert run.stop() == 0
    finally:
        run.kill()
        if broker is not None:
            broker.stop()


@needs_chromium
def test_preview_off_is_absent_and_page_still_live(tmp_path, hamilton_clip, browser):
    """The default: loopback, no token, no preview. /stream.mjpg is 404 and the page says the preview
    is off; the faces and their labels still show."""
    port = free_port()
    run = start_daemon(tmp_path, port, hamilton_clip, "")
    try:
        assert request(port, "/stream.mjpg")[0] == 404
        browser.goto(f"http://127.0.0.1:{port}/")
        assert browser.wait_for(FACE_LABEL, 10)
        assert browser.eval("document.querySelector('#preview img')") is None
        assert browser.eval("document.getElementById('preview-off').hidden") is False
        assert browser.console_errors() == []
        assert run.stop() == 0
    finally:
        run.kill()


def test_non_loopback_bind_without_token_refuses_to_start(tmp_path, hamilton_clip):
    """A server reachable from the network with no token: a start-up error (exit 2, one line), and
    nothing listens on the port."""
    port = free_port()
    run = Run(tmp_path, "--source", str(hamilton_clip), "--http-port", str(port), "--http-host", "0.0.0.0")
    assert run.wait(60) == 2
    err = run.err().strip().splitlines()
    assert err[-1].startswith("edge-fer: error: http.host '0.0.0.0'") and "http.token" in err[-1], err
    assert "Traceback" not in run.err()
    with pytest.raises(OSError):
        request(port, "/")


@needs_chromium
@pytest.mark.slow
def test_page_reconnects_through_a_daemon_restart(tmp_path, hamilton_clip, browser):
    """The page shows 'reconnecting' while the daemon is down and goes live again (labels, preview)
    once it is back on the same port, without a reload."""
    port = free_port()
    http = "preview = true\n"
    run = start_daemon(tmp_path, port, hamilton_clip, http)
    try:
        browser.goto(f"http://127.0.0.1:{port}/")
        assert browser.wait_for(FACE_LABEL, 10)
        assert run.stop() == 0
        assert browser.wait_for("document.getElementById('conn').textContent.startsWith('reconnecting')", 10)
        run = start_daemon(tmp_path, port, hamilton_clip, http)
        assert browser.wait_for("document.getElementById('conn').textContent === 'live'", 15)
        assert browser.wait_for(FACE_LABEL, 10)
        assert browser.wait_for("document.querySelector('#preview img')?.naturalWidth", 10) > 0
        errors = [e for e in browser.console_errors() if "ERR_CONNECTION_REFUSED" not in e]
        assert errors == []  # only the failed polls while the daemon was down
        assert run.stop() == 0
    finally:
        run.kill()


def save_small_png(src: Path, dst: Path, colors: int = 256) -> None:
    """The screenshot for the docs, as a palette PNG (a fraction of the size)."""
    from PIL import Image

    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im.convert("RGB").quantize(colors=colors, method=Image.Quantize.FASTOCTREE).save(dst, optimize=True)
