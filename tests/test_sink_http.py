"""The HTTP sink with real requests (urllib) against a server on a free loopback port."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from edge_fer.config import HttpConfig
from edge_fer.errors import ConfigError
from edge_fer.sinks.http import HttpSink
from edge_fer.sinks.prometheus import PROMETHEUS_CONTENT_TYPE, render_metrics
from edge_fer.types import Event, Sink

STAGES = ("capture", "detect", "preprocess", "classify", "track", "sink")


def status(last_frame_ts: float | None = None, **kw):
    st = {
        "fps": 24.5,
        "frames": 1000,
        "faces": 950,
        "dropped_frames": 7,
        "errors": 1,
        "tracks": 2,
        "uptime_s": 41.0,
        "last_frame_ts": time.time() if last_frame_ts is None else last_frame_ts,
        "source": 'cam "0"',
        "model": "default-int8",
        "stages": {s: {"mean_ms": 1.5, "p50_ms": 1.2, "p90_ms": 2.0, "p99_ms": 4.0, "max_ms": 9.0} for s in STAGES},
    }
    st.update(kw)
    return st


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


@pytest.fixture
def sink():
    s = HttpSink(HttpConfig(port=0))
    yield s
    s.close()


def test_binds_loopback_free_port_and_is_a_sink(sink):
    assert sink.host == "127.0.0.1" and sink.port > 0
    assert isinstance(sink, Sink)
    code, ctype, body = get(sink.url + "/api")
    assert code == 200 and "/metrics" in json.loads(body)["endpoints"]
    assert get(sink.url + "/nope")[0] == 404


def test_healthz_rules(sink):
    code, ctype, body = get(sink.url + "/healthz")
    assert (code, json.loads(body)["status"]) == (503, "no-status")
    sink.set_status_provider(lambda: status(last_frame_ts=None) | {"last_frame_ts": None})
    code, _, body = get(sink.url + "/healthz")
    assert (code, json.loads(body)["status"]) == (503, "starting")
    sink.set_status_provider(lambda: status())
    code, ctype, body = get(sink.url + "/healthz")
    b = json.loads(body)
    assert code == 200 and ctype == "application/json" and b["status"] == "ok" and b["fps"] == 24.5
    sink.set_status_provider(lambda: status(last_frame_ts=time.time() - sink.max_age_s - 1))
    code, _, body = get(sink.url + "/healthz")
    assert (code, json.loads(body)["status"]) == (503, "stale")

    def broken():
        raise RuntimeError("boom")

    sink.set_status_provider(broken)
    code, _, body = get(sink.url + "/healthz")
    assert (code, json.loads(body)["status"]) == (503, "error")
    assert sink.stats().errors >= 1


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def parse_prometheus(text: str) -> dict[str, list[tuple[str, float]]]:
    """A strict-enough reader of the text format: HELP/TYPE before samples, valid sample lines."""
    assert text.endswith("\n")
    samples: dict[str, list[tuple[str, float]]] = {}
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, mtype = line.split(" ", 3)
            assert mtype in ("counter", "gauge", "summary", "histogram", "untyped")
            assert name not in typed, f"TYPE declared twice for {name}"
            typed[name] = mtype
            continue
        m = SAMPLE.match(line)
        assert m, f"bad sample line: {line!r}"
        name = m.group(1)
        assert name in typed, f"sample before its TYPE: {line!r}"
        samples.setdefault(name, []).append((m.group(2) or "", float(m.group(4))))
    for name, mtype in typed.items():
        if mtype == "counter":
            assert name.endswith("_total"), name
    return samples


class FakeSink:
    name = "mqtt"

    def stats(self):
        from edge_fer.sinks.outbox import MqttStats

        return MqttStats(sent=5, dropped=2, errors=3, queued=1, connected=1)


def test_metrics_prometheus_text(sink):
    sink.set_status_provider(lambda: status())
    sink.set_sinks([FakeSink(), sink])
    code, ctype, body = get(sink.url + "/metrics")
    assert code == 200 and ctype == PROMETHEUS_CONTENT_TYPE
    assert "# HELP edge_fer_fps " in body and "# TYPE edge_fer_fps gauge" in body
    m = parse_prometheus(body)
    one = lambda name: m[name][0][1]  # noqa: E731
    assert one("edge_fer_up") == 1
    assert one("edge_fer_fps") == 24.5
    assert one("edge_fer_frames_total") == 1000
    assert one("edge_fer_faces_total") == 950
    assert one("edge_fer_dropped_frames_total") == 7
    assert one("edge_fer_errors_total") == 1
    assert one("edge_fer_tracks") == 2
    assert one("edge_fer_uptime_seconds") == 41
    assert 0 <= one("edge_fer_last_frame_age_seconds") < 5
    assert m["edge_fer_info"][0][0] == '{source="cam \\"0\\"",model="default-int8"}'
    lat = dict(m["edge_fer_stage_latency_seconds"])
    assert len(lat) == 3 * len(STAGES)
    assert lat['{stage="detect",quantile="0.99"}'] == pytest.approx(0.004)
    assert lat['{stage="capture",quantile="0.5"}'] == pytest.approx(0.0012)
    assert dict(m["edge_fer_stage_latency_max_seconds"])['{stage="sink"}'] == pytest.approx(0.009)
    assert dict(m["edge_fer_stage_latency_mean_seconds"])['{stage="track"}'] == pytest.approx(0.0015)
    sent = dict(m["edge_fer_sink_sent_total"])
    assert sent['{sink="mqtt"}'] == 5 and '{sink="http"}' in sent
    assert dict(m["edge_fer_sink_dropped_total"])['{sink="mqtt"}'] == 2
    assert dict(m["edge_fer_sink_connected"])['{sink="mqtt"}'] == 1


def test_metrics_without_status_still_valid():
    text = render_metrics(None, {"jsonl": {"sent": 1, "dropped": 0, "errors": 0}})
    m = parse_prometheus(text)
    assert m["edge_fer_up"][0][1] == 0 and "edge_fer_fps" not in m
    text = render_metrics(status(fps=float("nan")), None)
    assert "edge_fer_fps NaN" in text
    parse_prometheus(text)


def test_latest_tracks_and_emit_is_cheap(sink):
    sink.emit(Event(type="face_appeared", ts=1.0, track_id=1, label="happy", scores={"happy": 0.9}, box=(1, 2, 3, 4)))
    sink.emit(Event(type="face_appeared", ts=1.1, track_id=2, label="sad", scores={"sad": 0.8}))
    sink.emit(Event(type="expression_changed", ts=1.2, track_id=1, label="surprise", scores={"surprise": 0.7}))
    sink.emit(Event(type="face_left", ts=1.3, track_id=2))
    code, ctype, body = get(sink.url + "/latest")
    d = json.loads(body)
    assert code == 200 and ctype == "application/json"
    assert [e["type"] for e in d["events"]] == ["face_appeared", "face_appeared", "expression_changed", "face_left"]
    assert d["schema"] == "edge-fer-latest/1" and d["version"] and d["created"].endswith("Z")
    assert [(t["track_id"], t["label"], t["confidence"]) for t in d["tracks"]] == [(1, "surprise", 0.7)]
    assert d["tracks"][0]["box"] is None and d["tracks"][0]["ts"] == 1.2
    t0 = time.perf_counter()
    for i in range(10_000):
        sink.emit(Event(type="face", ts=float(i), track_id=1, label="happy", scores={"happy": 1.0}))
    per_emit = (time.perf_counter() - t0) / 10_000
    assert per_emit < 1e-3, per_emit  # no I/O on the hot path (typically a few microseconds)
    d = json.loads(get(sink.url + "/latest")[2])
    assert len(d["events"]) == 50 and d["events"][-1]["ts"] == 9999.0  # bounded
    assert sink.stats().sent == 10_004


def test_concurrent_requests_and_close_releases_port():
    s = HttpSink(HttpConfig(port=0))
    s.set_status_provider(lambda: status())
    results: list[int] = []

    def worker():
        for _ in range(5):
            results.append(get(s.url + "/metrics")[0])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [200] * 20
    port = s.port
    s.close()
    s.close()  # idempotent
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # the port is free again
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)


def test_port_in_use_is_a_config_error(sink):
    with pytest.raises(ConfigError, match=str(sink.port)):
        HttpSink(HttpConfig(port=sink.port))


def test_room_state_is_the_largest_face_and_forgets_who_left():
    from edge_fer.sinks.room import Room

    room = Room()
    empty = {k: v for k, v in room.state(5.0).items() if k not in ("version", "created")}
    assert empty == {
        "schema": "edge-fer-state/1",
        "ts": 5.0,
        "faces": 0,
        "label": "none",
        "confidence": None,
        "scores": {},
        "tracks": [],
    }
    assert not room.update(Event(type="heartbeat", ts=1.0).to_dict())
    for tid, label, box in ((4, "happy", (0, 0, 50, 50)), (3, "sad", (0, 0, 10, 10))):
        assert room.update(
            Event(type="face_appeared", ts=1.0, track_id=tid, label=label, scores={label: 0.75}, box=box).to_dict()
        )
    s = room.state(6.0)
    assert (s["faces"], s["label"], s["confidence"], s["scores"]) == (2, "happy", 0.75, {"happy": 0.75})
    assert [t["track_id"] for t in s["tracks"]] == [3, 4] and s["tracks"] == room.tracks()
    assert s["tracks"][1] == {
        "track_id": 4,
        "label": "happy",
        "confidence": 0.75,
        "scores": {"happy": 0.75},
        "box": [0, 0, 50, 50],
        "ts": 1.0,
    }
    assert room.update(Event(type="face_left", ts=2.0, track_id=4).to_dict())
    assert room.state(7.0)["label"] == "sad" and [t["track_id"] for t in room.tracks()] == [3]


# --- the live page: assets, /api/state, the token, the preview switch --------------------------------
TOKEN = "sink-test-token-0123456789"


def request(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_page_assets_are_served_from_the_package_with_a_strict_policy(sink):
    code, headers, body = request(sink.port, "/")
    assert code == 200 and headers["content-type"].startswith("text/html")
    assert b'src="/app.js"' in body and b'href="/style.css"' in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    for path, ctype in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
        code, headers, body = request(sink.port, path)
        assert code == 200 and headers["content-type"].startswith(ctype) and len(body) > 500
    html = request(sink.port, "/")[2].decode() + request(sink.port, "/app.js")[2].decode()
    assert "http://" not in html and "https://" not in html  # nothing fetched from elsewhere
    assert request(sink.port, "/stream.mjpg")[0] == 404  # the preview is off by default
    assert "/stream.mjpg" not in json.loads(request(sink.port, "/api")[2])["endpoints"]


def test_state_has_faces_timeline_health_and_sinks():
    s = HttpSink(HttpConfig(port=0), labels=("happy", "sad"))
    try:
        s.set_status_provider(lambda: status(detector="haar+roi", source="rtsp://admin:***@cam/1"))
        t0 = round(time.time()) - 20.0
        s.emit(Event(type="face_appeared", ts=t0, track_id=4, label="happy", scores={"happy": 0.8, "sad": 0.2}))
        s.emit(Event(type="expression_changed", ts=t0 + 5, track_id=4, label="sad", scores={"happy": 0.3, "sad": 0.7}))
        code, _, body = request(s.port, "/api/state")
        d = json.loads(body)
        assert code == 200 and d["labels"] == ["happy", "sad"] and d["schema"] == "edge-fer-live-state/1"
        assert d["faces"] == [
            {
                "track_id": 4,
                "label": "sad",
                "confidence": 0.7,
                "scores": {"happy": 0.3, "sad": 0.7},
                "box": None,
                "since": None,
            }
        ]
        segs = d["timeline"]["segments"]
        assert [(g["label"], g["start"], g["end"]) for g in segs] == [("happy", t0, t0 + 5), ("sad", t0 + 5, None)]
        h = d["health"]
        assert h["ok"] is True and h["status"] == "ok" and h["detector"] == "haar+roi" and h["fps"] == 24.5
        assert set(h["stages"]) == set(STAGES) and h["source"] == "rtsp://admin:***@cam/1"
        assert d["sinks"]["http"]["sent"] == 2 and d["preview"] == {"enabled": False}
    finally:
        s.close()


def test_token_query_sets_cookie_and_bearer_works():
    s = HttpSink(HttpConfig(port=0, token=TOKEN))
    try:
        port = s.port
        for path in ("/", "/app.js", "/api/state", "/latest", "/metrics", "/healthz", "/api"):
            code, headers, _ = request(port, path)
            assert code == 401 and headers["www-authenticate"].startswith("Bearer"), path
        assert b"Token required" in request(port, "/")[2]
        assert request(port, "/api/state", {"Authorization": "Bearer " + TOKEN[:-1] + "X"})[0] == 401
        assert request(port, "/api/state", {"Authorization": "Bearer " + TOKEN})[0] == 200
        code, headers, _ = request(port, "/?token=" + TOKEN)
        assert code == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert cookie.startswith(f"edge_fer_token_{port}={TOKEN};") and "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        jar = {"Cookie": cookie.split(";")[0]}
        assert request(port, "/", jar)[0] == 200 and request(port, "/api/state", jar)[0] == 200
        assert request(port, "/", {"Cookie": f"edge_fer_token_{port}=nope"})[0] == 401
        assert request(port, "/metrics?token=" + TOKEN)[0] == 200  # a scrape URL may carry it too
        assert s.stats().rejected_token == 10
    finally:
        s.close()


def test_public_metrics_opens_only_metrics_and_healthz():
    s = HttpSink(HttpConfig(port=0, token=TOKEN, public_metrics=True))
    try:
        s.set_status_provider(lambda: status())
        assert request(s.port, "/metrics")[0] == 200 and request(s.port, "/healthz")[0] == 200
        for path in ("/", "/api/state", "/latest"):
            assert request(s.port, path)[0] == 401, path
    finally:
        s.close()


def test_timeline_keeps_the_window_and_a_bounded_number_of_segments():
    from edge_fer.sinks.timeline import Timeline

    t = Timeline(window_s=60.0, max_segments=3)
    t.update({"type": "face_appeared", "ts": 0.0, "track_id": 1, "label": "happy"})
    t.update({"type": "expression_changed", "ts": 10.0, "track_id": 1, "label": "sad"})
    t.update({"type": "face_left", "ts": 20.0, "track_id": 1})
    t.update({"type": "expression_changed", "ts": 30.0, "track_id": 2, "label": "fear"})  # joined late
    t.update({"type": "status", "ts": 31.0})
    got = [(g["track_id"], g["label"], g["start"], g["end"]) for g in t.segments(now=75.0)]
    assert got == [(1, "sad", 10.0, 20.0), (2, "fear", 30.0, None)]  # (1, happy) ended > 60 s ago
    for i in range(10):
        t.update({"type": "face_appeared", "ts": 40.0 + i, "track_id": 10 + i, "label": "happy"})
        t.update({"type": "face_left", "ts": 40.5 + i, "track_id": 10 + i})
    assert len(t.segments(now=60.0)) == 4  # 3 closed ones at most, plus the open one
