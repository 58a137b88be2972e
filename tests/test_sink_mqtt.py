"""The MQTT sink against a real mosquitto broker that each test starts on a free loopback port.

Skipped (with the reason) when /usr/sbin/mosquitto (Debian's ``mosquitto`` package) or paho-mqtt is absent.
Subscribers use persistent sessions (clean_session=False) and the broker runs with persistence, so
messages published while a subscriber is reconnecting after a broker restart are kept for it: the
tests do not depend on who reconnects first.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt  # the test extra installs paho-mqtt
import pytest

from edge_fer import config
from edge_fer.config import MqttConfig
from edge_fer.errors import ConfigError, MissingExtraError
from edge_fer.sinks.mqtt import MqttSink
from edge_fer.types import Event

MOSQUITTO = os.environ.get("MOSQUITTO") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
needs_broker = pytest.mark.skipif(
    not os.access(MOSQUITTO, os.X_OK), reason=f"mosquitto broker not found at {MOSQUITTO} (apt-get install mosquitto)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


class Broker:
    """A mosquitto process on 127.0.0.1:port with persistence in a temp dir."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        self.conf.write_text(
            textwrap.dedent(
                f"""\
                listener {self.port} 127.0.0.1
                allow_anonymous true
                persistence true
                persistence_location {self.dir}/
                user {getpass.getuser()}
                log_dest stdout
                """
            )
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=logf, stderr=subprocess.STDOUT)
        logf.close()

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        assert wait_for(listening, 5.0), f"mosquitto did not listen on {self.port}: {self.log.read_text()[-2000:]}"
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Subscriber:
    """A paho client with a persistent session that records every message under ``<topic>/#``."""

    def __init__(self, port: int, pattern: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.pattern = pattern
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(pattern, qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, 10)
        self.client.loop_start()
        assert self.subscribed.wait(5), "test subscriber could not subscribe"

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self.lock:
            return [(p, r) for t, p, r in self.messages if t == topic]

    def events(self, topic: str) -> list[dict]:
        return [json.loads(p) for p, _ in self.on(f"{topic}/events")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def topic() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def make_sink(port: int, topic: str, **kw) -> MqttSink:
    """The sink on 127.0.0.1:port; ``kw`` are fields of MqttConfig or the sink's own keyword parameters."""
    kw.setdefault("reconnect_min_delay", 0.1)
    kw.setdefault("reconnect_max_delay", 0.5)
    options = {k: kw.pop(k) for k in list(kw) if k in MqttConfig.__dataclass_fields__}
    return MqttSink(MqttConfig(host="127.0.0.1", port=port, topic=topic, **options), **kw)


def face_event(i: int, etype: str = "expression_changed", label: str = "happy") -> Event:
    return Event(
        type=etype,
        ts=1_700_000_000.0 + i,
        frame=i,
        track_id=1,
        label=label,
        scores={"happy": 0.9, "sad": 0.1},
        box=(10, 20, 30, 30),
        extra={"seq": i},
    )


# -- tests -------------------------------------------------------------------------------------------


def test_missing_paho_raises_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(MissingExtraError, match=r"edge-fer\[mqtt\]"):
        MqttSink(MqttConfig(host="localhost", port=1))


@pytest.mark.parametrize("kw", [{"qos": 3}, {"topic": "a/#"}, {"topic": "/"}, {"port": 0}, {"queue_size": 0}])
def test_invalid_arguments_are_config_errors(kw):
    # checked once: ranges and choices by the config schema, the topic prefix by the sink
    with pytest.raises(ConfigError):
        cfg = config.build(None, {"mqtt.host": "localhost", **{f"mqtt.{k}": v for k, v in kw.items()}})
        MqttSink(cfg.mqtt)


@needs_broker
def test_events_availability_state_and_close(broker, topic):
    sub = Subscriber(broker.port, f"{topic}/#")
    sink = make_sink(broker.port, topic)
    try:
        assert wait_for(lambda: sink.stats().connected == 1)
        assert wait_for(lambda: (b"online", False) in sub.on(f"{topic}/availability"))
        events = [
            face_event(0, "face_appeared"),
            face_event(1),
            face_event(2, "face_left"),
            Event(type="heartbeat", ts=1.5),
        ]
        for e in events:
            sink.emit(e)
        assert wait_for(lambda: len(sub.events(topic)) == len(events))
        assert sub.events(topic) == [e.to_dict() for e in events]
        assert wait_for(lambda: sink.stats().sent == len(events))
        assert wait_for(lambda: len(sub.on(f"{topic}/state")) >= 1)
        state = json.loads(sub.on(f"{topic}/state")[-1][0])
        assert set(state) >= {"ts", "faces", "label", "scores", "tracks"}
        assert state["schema"] == "edge-fer-state/1" and state["version"] and state["created"].endswith("Z")
        assert all(e["schema"] == "edge-fer-event/1" for e in sub.events(topic))
    finally:
        sink.close()
    assert wait_for(lambda: (b"offline", False) in sub.on(f"{topic}/availability"))
    st = sink.stats()
    assert (st.sent, st.dropped, st.queued, st.connected) == (len(events), 0, 0, 0)
    sink.close()  # idempotent
    sink.emit(face_event(9))  # after close: counted, not raised
    assert sink.stats().dropped == 1
    sub.close()

    # A late subscriber sees the retained availability ("offline") and state, and no event (not retained).
    late = Subscriber(broker.port, f"{topic}/#")
    try:
        assert wait_for(lambda: (b"offline", True) in late.on(f"{topic}/availability"))
        time.sleep(0.3)
        assert late.on(f"{topic}/events") == []
        assert [r for _, r in late.on(f"{topic}/state")] == [True]
    finally:
        late.close()


@needs_broker
def test_last_will_offline_on_unclean_disconnect(broker, topic):
    sub = Subscriber(broker.port, f"{topic}/availability")
    code = textwrap.dedent(
        f"""
        import sys, time
        from edge_fer.config import MqttConfig
        from edge_fer.sinks.mqtt import MqttSink
        s = MqttSink(MqttConfig(host="127.0.0.1", port={broker.port}, topic="{topic}"), reconnect_min_delay=0.1)
        for _ in range(500):
            if s.connected:
                break
            time.sleep(0.01)
        print("connected" if s.connected else "not connected", flush=True)
        time.sleep(30)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "connected"
        assert wait_for(lambda: (b"online", False) in sub.on(f"{topic}/availability"))
        proc.kill()  # no DISCONNECT packet: the broker publishes the last will
        proc.wait(5)
        assert wait_for(lambda: (b"offline", False) in sub.on(f"{topic}/availability"), 5.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        sub.close()


@needs_broker
def test_broker_stopped_mid_run_queues_drops_oldest_and_redelivers(broker, topic):
    sub = Subscriber(broker.port, f"{topic}/events")
    sink = make_sink(broker.port, topic, queue_size=50)
    try:
        assert wait_for(lambda: sink.connected)
        for i in range(10):
            sink.emit(face_event(i))
        assert wait_for(lambda: len(sub.events(topic)) == 10)
        assert wait_for(lambda: sink.stats().sent == 10)

        broker.stop()
        assert wait_for(lambda: not sink.connected, 5.0), "the sink did not notice the broker going away"
        worst = 0.0
        t_all = time.perf_counter()
        for i in range(10, 210):
            t0 = time.perf_counter()
            sink.emit(face_event(i))  # must neither raise nor block
            worst = max(worst, time.perf_counter() - t0)
        t_all = time.perf_counter() - t_all
        # Microseconds each in practice; the bound only has to tell "queued" from "waited on the network"
        # on a loaded 2-core machine.
        assert worst < 0.1 and t_all < 1.0, (worst, t_all)
        assert wait_for(lambda: sink.stats().connect_failures >= 1)  # it tries (and fails) to reconnect
        st = sink.stats()
        assert (st.queued, st.dropped, st.connected) == (50, 150, 0), st
        assert st.connect_failures >= 1 and st.disconnects == 1 and st.errors >= 2

        broker.start()  # same port, persisted sessions: the subscriber gets what was published meanwhile
        # QoS 1 is at-least-once: the broker may redeliver a message whose PUBACK it had not processed
        # when it stopped, so compare without duplicates (order kept).
        expected = list(range(10)) + list(range(160, 210))  # the oldest 150 were dropped
        uniq = lambda: list(dict.fromkeys(e["seq"] for e in sub.events(topic)))  # noqa: E731
        assert wait_for(lambda: len(uniq()) >= len(expected), 10.0), sink.stats()
        assert uniq() == expected
        assert wait_for(lambda: sink.stats().sent == 60)
        st = sink.stats()
        assert (st.queued, st.dropped, st.connected, st.connects) == (0, 150, 1, 2), st
    finally:
        sink.close()
        sub.close()


@needs_broker
def test_broker_down_at_start_then_up(tmp_path, topic):
    b = Broker(tmp_path / "b").start()
    sub = Subscriber(b.port, f"{topic}/events")  # registers a persistent session, then the broker goes away
    b.stop()
    t0 = time.perf_counter()
    sink = make_sink(b.port, topic)
    assert time.perf_counter() - t0 < 1.0  # the constructor does not wait for the broker
    try:
        for i in range(5):
            sink.emit(face_event(i))
        assert wait_for(lambda: sink.stats().connect_failures >= 1)
        assert sink.stats().queued == 5 and not sink.connected
        b.start()
        assert wait_for(lambda: len(sub.events(topic)) >= 5, 10.0), sink.stats()
        assert list(dict.fromkeys(e["seq"] for e in sub.events(topic))) == list(range(5))
    finally:
        sink.close()
        sub.close()
        b.stop()


def test_a_server_that_never_answers_as_a_broker_is_counted_and_logged(topic, caplog):
    """A port that takes the connection and says nothing (a hung broker, another service) was never
    counted or logged: the run only showed 'connecting ... in the background'."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)  # read nothing, answer nothing
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    caplog.set_level("WARNING", logger="edge_fer.sinks.mqtt")
    sink = make_sink(port, topic, keepalive=5)
    try:
        sink.emit(face_event(0))
        assert wait_for(lambda: sink.stats().connect_failures >= 1, 30.0), sink.stats()
        assert held, "the sink never connected to the silent server"
        assert sink.stats().errors >= 1 and not sink.connected
        assert "never answered as an MQTT broker" in caplog.text, caplog.text
    finally:
        sink.close(timeout=0.5)
        stop.set()
        t.join(5)
        for c in held:
            c.close()
        srv.close()


@needs_broker
def test_close_without_broker_is_quick_and_counts_drops(topic):
    sink = make_sink(free_port(), topic)
    sink.emit(face_event(0))
    t0 = time.perf_counter()
    sink.close(timeout=0.5)
    assert time.perf_counter() - t0 < 3.0
    assert sink.stats().dropped == 1


@needs_broker
def test_home_assistant_discovery_state_and_stats(broker, topic):
    prefix = f"ha-{topic}"
    sub = Subscriber(broker.port, "#")
    sink = make_sink(broker.port, topic, discovery=True, discovery_prefix=prefix, stats_interval=0.2)
    sink.set_status_provider(lambda: {"fps": 12.5, "frames": 100})
    try:
        assert wait_for(lambda: sink.connected)
        n_configs = 2 + 7  # expression, faces, one per FER2013 label

        def configs():
            with sub.lock:
                return [(t, json.loads(p)) for t, p, _ in sub.messages if t.startswith(prefix + "/")]

        assert wait_for(lambda: len(configs()) == n_configs)
        for t, cfg in configs():
            assert t.startswith(f"{prefix}/sensor/{sink.node_id}/") and t.endswith("/config")
            assert cfg["state_topic"] == f"{topic}/state"
            assert cfg["availability_topic"] == f"{topic}/availability"
            assert cfg["unique_id"].startswith(sink.node_id) and cfg["device"]["identifiers"] == [sink.node_id]
        assert len({cfg["unique_id"] for _, cfg in configs()}) == n_configs

        sink.emit(
            Event(
                type="face_appeared",
                ts=1.0,
                track_id=3,
                label="sad",
                scores={"sad": 0.7, "happy": 0.3},
                box=(0, 0, 10, 10),
            )
        )
        sink.emit(
            Event(
                type="face_appeared",
                ts=1.0,
                track_id=4,
                label="happy",
                scores={"sad": 0.2, "happy": 0.8},
                box=(0, 0, 50, 50),
            )
        )

        def last_state():
            msgs = sub.on(f"{topic}/state")
            return json.loads(msgs[-1][0]) if msgs else {}

        assert wait_for(lambda: last_state().get("faces") == 2)
        s = last_state()
        assert s["label"] == "happy" and s["confidence"] == 0.8  # the largest face
        assert [t["track_id"] for t in s["tracks"]] == [3, 4]
        # the shape of /latest's tracks (edge_fer.sinks.room)
        assert all(set(t) == {"track_id", "label", "confidence", "scores", "box", "ts"} for t in s["tracks"])
        sink.emit(Event(type="face_left", ts=2.0, track_id=4))
        sink.emit(Event(type="face_left", ts=2.0, track_id=3))
        assert wait_for(lambda: last_state().get("faces") == 0)
        assert last_state()["label"] == "none"

        assert wait_for(lambda: len(sub.on(f"{topic}/stats")) >= 1)
        stats = json.loads(sub.on(f"{topic}/stats")[-1][0])
        assert stats["status"]["fps"] == 12.5 and "sent" in stats["sink"]
    finally:
        sink.close()
        sub.close()
