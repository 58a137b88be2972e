"""MQTT sink (paho-mqtt >= 2, the optional extra ``mqtt``).

Topics (``<topic>`` is the ``topic`` argument, ``edge-fer`` by default):

=============================  ======================================================  ========  =====
topic                          payload                                                 retained  QoS
=============================  ======================================================  ========  =====
``<topic>/availability``       ``online`` on every (re)connect; ``offline`` on close   yes       1
                               and as the broker-published last will on an unclean
                               disconnect (crash, power loss, network cut)
``<topic>/events``             one JSON object per event, ``Event.to_dict()``:         **no**    ``qos``
                               ``type`` and ``ts`` always; face events add
                               ``track_id``, ``label``, ``scores``, ``box``, ...
``<topic>/state``              ``{"ts", "faces", "label", "confidence", "scores",        yes       0
                               "tracks": [{"track_id", "label", "confidence"}]}``:
                               the faces present now; ``label``/``scores`` are those of
                               the largest face (``"none"`` and ``{}`` when nobody).
                               Republished at most every 0.25 s when it changes.
``<topic>/stats``              every ``stats_interval`` s: ``{"ts", "status": <the      no        0
                               pipeline status dict or null>, "sink": stats()}``
=============================  ======================================================  ========  =====

All events go to the one ``<topic>/events`` topic (as Frigate does); subscribers filter on ``type``.
Events are never retained: a subscriber that connects later must not see an old ``face_appeared``.

Delivery and drop policy: ``emit`` only appends to an in-memory queue (bounded by ``queue_size``) and
returns; a worker thread hands queued events to paho while connected, keeping at most ``max_inflight``
unacknowledged. While the broker is unreachable (down at start, or gone mid-run) events wait in the
queue; when it is full the **oldest** event is dropped and counted in ``stats()["dropped"]``. paho's
network thread reconnects with exponential back-off (``reconnect_min_delay`` .. ``reconnect_max_delay``)
and the queue drains on reconnect. With QoS 1, events handed to paho before a disconnect are resent
after reconnect (at-least-once: a subscriber may rarely see a duplicate). ``sent`` counts events the
broker acknowledged (QoS >= 1) or that were written to the socket (QoS 0).

Nothing on the pipeline's thread waits on the network: ``emit`` and the constructor never raise on
transport errors and never block; ``flush()`` (which the pipeline calls after every frame with events)
only wakes the worker. Waiting for acknowledgements belongs to shutdown: ``close`` drains for at most
``close_timeout`` seconds, stops paho's thread within a bounded time even when the broker no longer
reads its socket, and counts what is still undelivered as dropped.

A **stalled** broker (connected, but no acknowledgement for ``ack_timeout`` seconds while events are in
flight: a frozen process, a half-open TCP connection) is treated like a disconnected one: it is logged
(once per stall, and again when it answers), ``stats()`` reports ``stalled`` = 1 and ``connected`` = 0,
no further events are handed to paho (at most ``max_inflight`` wait there), and new events wait in the
bounded queue (oldest dropped when full). When acknowledgements resume, the queue drains; QoS >= 1
events in flight are delivered at least once. (With QoS 0 nothing is acknowledged, so a stall shows only
once the socket's buffers fill.)

Home Assistant: with ``discovery=True``, retained config messages under
``<discovery_prefix>/sensor/<node_id>/<object>/config`` create one device with an ``Expression`` sensor
(label of the largest face), a ``Faces`` sensor (count) and one ``%`` sensor per expression, all reading
``<topic>/state`` and using ``<topic>/availability``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable, Mapping, Sequence

from edge_fer.errors import ConfigError, MissingExtraError
from edge_fer.labels import LABELS
from edge_fer.types import Event

log = logging.getLogger(__name__)

StatusProvider = Callable[[], Mapping[str, Any]]

_STATE_MIN_INTERVAL_S = 0.25


def _import_paho() -> Any:
    try:
        import paho.mqtt.client as mqtt  # noqa: PLC0415 (optional extra, imported lazily)
    except ImportError as exc:
        raise MissingExtraError("the MQTT sink", "mqtt", "paho-mqtt") from exc
    if not hasattr(mqtt, "CallbackAPIVersion"):
        raise MissingExtraError("the MQTT sink", "mqtt", "paho-mqtt>=2.0")
    return mqtt


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "edge_fer"


def _json_default(o: Any) -> Any:
    for attr in ("tolist", "item"):
        if hasattr(o, attr):
            return getattr(o, attr)()
    return str(o)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, separators=(",", ":"))


class MqttSink:
    """Publishes events to an MQTT broker; see the module docstring for topics and the drop policy.

    Construction validates the arguments (``ConfigError``), imports paho (``MissingExtraError`` when
    the ``mqtt`` extra is missing) and starts connecting in the background; it does not wait for the
    broker.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 1883,
        topic: str = "edge-fer",
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        qos: int = 1,
        keepalive: int = 30,
        queue_size: int = 1000,
        discovery: bool = False,
        device_name: str = "edge-fer",
        *,
        discovery_prefix: str = "homeassistant",
        labels: Sequence[str] | None = None,
        stats_interval: float = 30.0,
        reconnect_min_delay: float = 1.0,
        reconnect_max_delay: float = 30.0,
        max_inflight: int = 20,
        close_timeout: float = 2.0,
        ack_timeout: float = 5.0,
        name: str = "mqtt",
    ) -> None:
        topic = (topic or "").strip().rstrip("/")
        if not topic or any(c in topic for c in "+#\0"):
            raise ConfigError(f"mqtt.topic: {topic!r} is not a valid topic prefix (no '+', '#', not empty)")
        if qos not in (0, 1, 2):
            raise ConfigError(f"mqtt.qos: must be 0, 1 or 2, not {qos!r}")
        if not (0 < int(port) < 65536):
            raise ConfigError(f"mqtt.port: {port!r} is not a TCP port")
        if int(queue_size) < 1:
            raise ConfigError(f"mqtt.queue_size: must be >= 1, not {queue_size!r}")
        if int(keepalive) < 5:
            raise ConfigError(f"mqtt.keepalive: must be >= 5 seconds, not {keepalive!r}")
        if not (float(ack_timeout) > 0):
            raise ConfigError(f"mqtt.ack_timeout: must be > 0 seconds, not {ack_timeout!r}")
        from edge_fer.redact import register_secret

        register_secret(password)  # hidden from every log line and error from now on
        mqtt = _import_paho()
        self._mqtt = mqtt

        self.name = name
        self.host, self.port, self.topic, self.qos = host, int(port), topic, int(qos)
        self.availability_topic = f"{topic}/availability"
        self.events_topic = f"{topic}/events"
        self.state_topic = f"{topic}/state"
        self.stats_topic = f"{topic}/stats"
        self.discovery = bool(discovery)
        self.discovery_prefix = discovery_prefix.strip("/") or "homeassistant"
        self.device_name = device_name
        self.node_id = _slug(f"edge_fer_{socket.gethostname()}_{topic}")
        self.labels = tuple(labels) if labels else LABELS
        self.stats_interval = float(stats_interval)
        self.close_timeout = float(close_timeout)
        self.ack_timeout = float(ack_timeout)
        self._max_inflight = max(1, int(max_inflight))

        self._cond = threading.Condition()
        self._queue: deque[dict[str, Any]] = deque()
        self._queue_size = int(queue_size)
        self._pending: deque[tuple[int, int]] = deque()  # (mid, qos) of events handed to paho, not yet done
        # stall detection: the last time the broker made progress (an event acknowledged, a connect, or
        # the first event handed over after none was in flight)
        self._last_progress = time.monotonic()
        self._stalled = False
        self._stalled_since = 0.0
        self._acked: set[int] = set()  # mids paho reported as published (PUBACK for QoS 1, written for QoS 0)
        self._publishing = False  # the worker is between client.publish() and recording the mid
        self._tracks: dict[int, dict[str, Any]] = {}
        self._state_dirty = False
        self._last_state = 0.0
        self._connected = False
        self._closing = False
        self._closed = False
        self._stop_worker = False
        self._warned_connect = False
        self._warned_drop = False
        self._status_provider: StatusProvider | None = None
        self._c = {
            "sent": 0, "dropped": 0, "errors": 0,
            "connects": 0, "disconnects": 0, "connect_failures": 0, "publish_errors": 0, "stalls": 0,
        }

        cid = client_id or f"edge-fer-{_slug(socket.gethostname())}-{uuid.uuid4().hex[:6]}"
        self.client_id = cid
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=cid,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if username:
            client.username_pw_set(username, password)
        client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(reconnect_min_delay, reconnect_max_delay)
        client.max_inflight_messages_set(self._max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        self._client = client
        try:
            client.connect_async(host, self.port, int(keepalive))
        except ValueError as exc:
            raise ConfigError(f"mqtt: {exc}") from exc
        client.loop_start()  # paho's network thread: connects, retries with back-off, reconnects
        self._worker = threading.Thread(target=self._run, name="edge-fer-mqtt", daemon=True)
        self._worker.start()
        log.info("MQTT sink: connecting to %s:%d in the background (topic prefix %r)", host, self.port, topic)

    # -- wiring from the runtime ------------------------------------------------------------------
    def set_status_provider(self, fn: StatusProvider | None) -> None:
        """Optional: ``fn()`` (the same status dict as the HTTP sink's) is included in ``<topic>/stats``."""
        self._status_provider = fn

    @property
    def connected(self) -> bool:
        """Connected and acknowledging (False while the broker is stalled)."""
        return self._connected and not self._stalled

    @property
    def stalled(self) -> bool:
        return self._stalled

    # -- Sink protocol ----------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Queue the event; O(1), never blocks on the network, never raises."""
        try:
            d = event.to_dict()
        except Exception as exc:  # noqa: BLE001
            log.warning("MQTT sink: cannot serialize event %r: %s", event, exc)
            with self._cond:
                self._c["errors"] += 1
                self._c["dropped"] += 1
            return
        with self._cond:
            if self._closing:
                self._c["dropped"] += 1
                return
            self._queue.append(d)
            if len(self._queue) > self._queue_size:
                self._queue.popleft()
                self._c["dropped"] += 1
                if not self._warned_drop:
                    self._warned_drop = True
                    why = ("stalled" if self._stalled else "not keeping up" if self._connected else "unreachable")
                    log.warning(
                        "MQTT sink: queue full (%d events) while the broker is %s; dropping the oldest",
                        self._queue_size, why,
                    )
            self._track(event.type, d)
            self._cond.notify_all()

    def flush(self, timeout: float = 0.0) -> None:
        """Wake the worker; never waits by default (the pipeline calls this after every frame with
        events: the frame loop must not wait on the network). With ``timeout`` > 0 (shutdown), wait at
        most that long for queued events to be acknowledged; returns at once when disconnected or
        stalled (the queue then waits for the broker)."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self._cond.notify_all()
            if timeout <= 0:
                return
            while self._connected and not self._stalled and (self._queue or self._pending):
                self._reap_locked()
                left = deadline - time.monotonic()
                if left <= 0 or not (self._queue or self._pending):
                    break
                self._cond.wait(min(left, 0.05))

    def close(self, timeout: float | None = None) -> None:
        """Drain (up to ``timeout``, default ``close_timeout``), publish retained ``offline``, disconnect
        cleanly (so the broker does not send the last will), stop the threads. Whatever is still queued
        is counted as dropped. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._closing = True
        timeout = self.close_timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + max(0.0, timeout)
        self.flush(timeout=max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._stop_worker = True
            self._cond.notify_all()
        self._worker.join(timeout=2.0)
        if self._connected and not self._stalled:
            try:
                info = self._client.publish(self.availability_topic, "offline", qos=1, retain=True)
                info.wait_for_publish(timeout=max(0.2, deadline - time.monotonic()))
            except (RuntimeError, ValueError, OSError) as exc:
                log.debug("MQTT sink: could not publish 'offline': %s", exc)
        try:
            self._client.disconnect()
        except Exception as exc:  # noqa: BLE001
            log.debug("MQTT sink: disconnect failed: %s", exc)
        self._stop_network(timeout=1.0)
        with self._cond:
            self._reap_locked()
            lost = len(self._queue) + len(self._pending)
            self._queue.clear()
            self._pending.clear()
            self._c["dropped"] += lost
            self._connected = False
            summary = (self._c["sent"], self._c["dropped"], self._c["stalls"])
        if lost:
            log.warning("MQTT sink: %d event(s) not delivered at close", lost)
        log.info("MQTT sink: closed: %d sent, %d dropped, %d stall(s)", *summary)

    def _stop_network(self, timeout: float) -> None:
        """``loop_stop()`` within ``timeout`` s. paho's thread keeps looping while unacknowledged
        messages remain and its socket is open, which with a stalled broker lasts until the keepalive
        gives up; past ``timeout`` the socket is shut down, which ends it at once."""
        stopper = threading.Thread(target=self._client.loop_stop, name="edge-fer-mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(timeout)
        if stopper.is_alive():
            log.debug("MQTT sink: paho did not stop within %.1fs; shutting its socket down", timeout)
            sock = self._client.socket()
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            stopper.join(2.0)

    def stats(self) -> dict[str, int]:
        """``sent``, ``dropped``, ``errors`` (= connect failures + unexpected disconnects + publish errors),
        ``queued``, ``inflight``, ``connected`` (0/1: connected *and* acknowledging), ``stalled`` (0/1:
        connected but no acknowledgement for ``ack_timeout`` s), ``stalls``, ``connects``, ``disconnects``,
        ``connect_failures``, ``publish_errors``."""
        with self._cond:
            self._reap_locked()
            self._check_stall_locked(time.monotonic())
            d = dict(self._c)
            d["queued"] = len(self._queue)
            d["inflight"] = len(self._pending)
            d["connected"] = int(self._connected and not self._stalled)
            d["stalled"] = int(self._stalled)
            return d

    # -- paho callbacks (paho's network thread) ------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            with self._cond:
                self._c["errors"] += 1
                self._c["connect_failures"] += 1
            log.error("MQTT sink: broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        client.publish(self.availability_topic, "online", qos=1, retain=True)
        if self.discovery:
            for cfg_topic, cfg in self.discovery_configs():
                client.publish(cfg_topic, _dumps(cfg), qos=1, retain=True)
        with self._cond:
            self._connected = True
            self._last_progress = time.monotonic()
            self._c["connects"] += 1
            self._warned_connect = False
            self._warned_drop = False
            self._state_dirty = True
            queued = len(self._queue)
            self._cond.notify_all()
        log.info("MQTT sink: connected to %s:%d (%d queued event(s) to send)", self.host, self.port, queued)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            self._stalled = False  # "disconnected" says it now; paho resends the QoS >= 1 ones on reconnect
            expected = self._closing
            if was and not expected:
                self._c["disconnects"] += 1
                self._c["errors"] += 1
            self._cond.notify_all()
        if was and not expected:
            log.warning("MQTT sink: lost the broker (%s); reconnecting with back-off, events are queued", reason_code)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        with self._cond:
            self._c["errors"] += 1
            self._c["connect_failures"] += 1
            first = not self._warned_connect
            self._warned_connect = True
        (log.warning if first else log.debug)(
            "MQTT sink: cannot connect to %s:%d; retrying with back-off (events are queued, up to %d)",
            self.host, self.port, self._queue_size,
        )

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()

    # -- worker thread -----------------------------------------------------------------------------
    def _reap_locked(self) -> None:
        """Count finished publishes as sent; forget QoS 0 ones lost with a connection."""
        if self._pending:
            keep: deque[tuple[int, int]] = deque()
            for mid, qos in self._pending:
                if mid in self._acked:
                    self._acked.discard(mid)
                    self._c["sent"] += 1
                    self._last_progress = time.monotonic()
                elif qos == 0 and not self._connected:
                    self._c["dropped"] += 1
                else:
                    keep.append((mid, qos))
            self._pending = keep
        if not self._publishing:
            # What is left are acks of other messages (availability, state, stats, discovery): forget them.
            self._acked.clear()

    def _check_stall_locked(self, now: float) -> None:
        """Enter / leave the stalled state (see the module docstring); logs each transition."""
        stalled = self._connected and bool(self._pending) and now - self._last_progress > self.ack_timeout
        if stalled == self._stalled:
            return
        self._stalled = stalled
        if stalled:
            self._stalled_since = now
            self._c["stalls"] += 1
            self._c["errors"] += 1
            log.warning(
                "MQTT sink: broker %s:%d has acknowledged nothing for %.1fs (stalled); holding events in the "
                "queue (up to %d, then the oldest are dropped) until it answers",
                self.host, self.port, now - self._last_progress, self._queue_size,
            )
        else:
            log.info("MQTT sink: broker %s:%d answers again after %.1fs stalled (%d event(s) queued)",
                     self.host, self.port, now - self._stalled_since, len(self._queue))
        self._cond.notify_all()

    def _run(self) -> None:
        next_stats = time.monotonic() + self.stats_interval if self.stats_interval > 0 else math.inf
        while True:
            item: dict[str, Any] | None = None
            do_state = do_stats = False
            with self._cond:
                while True:
                    self._reap_locked()
                    if self._stop_worker:
                        return
                    now = time.monotonic()
                    self._check_stall_locked(now)
                    if self._connected and not self._stalled:
                        if self._queue and len(self._pending) < self._max_inflight:
                            item = self._queue.popleft()
                            break
                        if self._state_dirty and now - self._last_state >= _STATE_MIN_INTERVAL_S:
                            do_state = True
                            self._state_dirty = False
                            self._last_state = now
                            break
                        if now >= next_stats:
                            do_stats = True
                            break
                    elif now >= next_stats:
                        next_stats = now + self.stats_interval  # nothing to report to; skip this round
                    wait = min(0.5, max(0.0, next_stats - now))
                    if self._state_dirty and self._connected:
                        wait = min(wait, max(0.0, _STATE_MIN_INTERVAL_S - (now - self._last_state)))
                    self._cond.wait(max(wait, 0.01))
                if do_state:
                    state = self._state_locked()
            try:
                if item is not None:
                    self._publish_event(item)
                elif do_state:
                    self._client.publish(self.state_topic, _dumps(state), qos=0, retain=True)
                elif do_stats:
                    next_stats = time.monotonic() + self.stats_interval
                    self._client.publish(self.stats_topic, _dumps(self._stats_payload()), qos=0, retain=False)
            except Exception as exc:  # noqa: BLE001 (never let the worker die)
                log.warning("MQTT sink: publish failed: %s", exc)
                with self._cond:
                    self._c["errors"] += 1
                    self._c["publish_errors"] += 1

    def _publish_event(self, d: dict[str, Any]) -> None:
        with self._cond:
            self._publishing = True
        try:
            payload = _dumps(d)
            info = self._client.publish(self.events_topic, payload, qos=self.qos, retain=False)
        except Exception as exc:  # noqa: BLE001 (payload too large, bad value: drop this one)
            log.warning("MQTT sink: dropping an event that cannot be published: %s", exc)
            with self._cond:
                self._publishing = False
                self._c["errors"] += 1
                self._c["publish_errors"] += 1
                self._c["dropped"] += 1
            return
        rc = info.rc
        with self._cond:
            self._publishing = False
            if rc == self._mqtt.MQTT_ERR_SUCCESS or (rc == self._mqtt.MQTT_ERR_NO_CONN and self.qos > 0):
                # QoS >= 1 without a connection stays in paho's store and is sent on reconnect.
                if not self._pending:
                    self._last_progress = time.monotonic()  # the ack clock starts with the first in flight
                self._pending.append((info.mid, self.qos))
            elif rc == self._mqtt.MQTT_ERR_NO_CONN:
                self._queue.appendleft(d)  # QoS 0 raced a disconnect: keep it for the reconnect
                if len(self._queue) > self._queue_size:
                    self._queue.pop()
                    self._c["dropped"] += 1
            else:
                self._c["errors"] += 1
                self._c["publish_errors"] += 1
                self._c["dropped"] += 1

    # -- state, stats, discovery -------------------------------------------------------------------
    def _track(self, etype: str, d: dict[str, Any]) -> None:
        tid = d.get("track_id")
        if tid is None:
            return
        if etype == "face_left":
            self._tracks.pop(tid, None)
        elif d.get("label") is not None:
            self._tracks[tid] = d
        else:
            return
        self._state_dirty = True
        self._cond.notify_all()

    def _state_locked(self) -> dict[str, Any]:
        tracks = sorted(self._tracks.values(), key=lambda t: t["track_id"])

        def area(t: dict[str, Any]) -> float:
            b = t.get("box")
            return float(b[2]) * float(b[3]) if b and len(b) == 4 else 0.0

        main = max(tracks, key=area, default=None)  # the largest face; the oldest track on ties

        def conf(t: dict[str, Any]) -> float | None:
            s = t.get("scores") or {}
            return round(float(s[t["label"]]), 4) if t.get("label") in s else None

        return {
            "ts": round(time.time(), 6),
            "faces": len(tracks),
            "label": main["label"] if main else "none",
            "confidence": conf(main) if main else None,
            "scores": dict(main.get("scores") or {}) if main else {},
            "tracks": [{"track_id": t["track_id"], "label": t.get("label"), "confidence": conf(t)} for t in tracks],
        }

    def _stats_payload(self) -> dict[str, Any]:
        status = None
        if self._status_provider is not None:
            try:
                status = dict(self._status_provider())
            except Exception as exc:  # noqa: BLE001
                log.debug("MQTT sink: status provider failed: %s", exc)
        return {"ts": round(time.time(), 6), "status": status, "sink": self.stats()}

    def discovery_configs(self) -> list[tuple[str, dict[str, Any]]]:
        """(config topic, payload) for the Home Assistant MQTT discovery messages (published retained)."""
        try:
            from importlib.metadata import version  # noqa: PLC0415

            sw = version("edge-fer")
        except Exception:  # noqa: BLE001
            sw = None
        device: dict[str, Any] = {
            "identifiers": [self.node_id],
            "name": self.device_name,
            "manufacturer": "edge-fer",
            "model": "edge-fer facial-expression recognizer",
        }
        if sw:
            device["sw_version"] = sw
        common = {
            "state_topic": self.state_topic,
            "availability_topic": self.availability_topic,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        }
        out: list[tuple[str, dict[str, Any]]] = []

        def add(obj: str, cfg: dict[str, Any]) -> None:
            uid = f"{self.node_id}_{obj}"
            out.append((f"{self.discovery_prefix}/sensor/{self.node_id}/{obj}/config",
                        {**cfg, "unique_id": uid, "object_id": uid, **common}))

        add("expression", {"name": "Expression", "icon": "mdi:emoticon-outline",
                           "value_template": "{{ value_json.label }}",
                           "json_attributes_topic": self.state_topic,
                           "json_attributes_template": "{{ {'confidence': value_json.confidence, "
                                                       "'tracks': value_json.tracks} | tojson }}"})
        add("faces", {"name": "Faces", "icon": "mdi:account-multiple", "state_class": "measurement",
                      "value_template": "{{ value_json.faces }}"})
        for label in self.labels:
            key = _slug(label)
            add(f"score_{key}", {
                "name": label.capitalize(), "unit_of_measurement": "%", "state_class": "measurement",
                "icon": "mdi:emoticon-outline",
                "value_template": "{{ ((value_json.scores['%s'] | default(0)) * 100) | round(1) }}" % label,
            })
        return out
