"""MQTT sink (paho-mqtt >= 2, the optional extra ``mqtt``).

Topics (``<topic>`` is ``mqtt.topic``, ``edge-fer`` by default):

=============================  ======================================================  ========  =====
topic                          payload                                                 retained  QoS
=============================  ======================================================  ========  =====
``<topic>/availability``       ``online`` on every (re)connect; ``offline`` on close   yes       1
                               and as the broker-published last will on an unclean
                               disconnect (crash, power loss, network cut)
``<topic>/events``             one JSON object per event, ``Event.to_dict()``:         **no**    ``qos``
                               ``schema``, ``version``, ``type`` and ``ts`` always;
                               face events add ``track_id``, ``label``, ``scores``,
                               ``box``, ...
``<topic>/state``              ``edge-fer-state/1``: ``{"ts", "faces", "label",         yes       0
                               "confidence", "scores", "tracks": [{"track_id",
                               "label", "confidence", "scores", "box", "ts"}]}``:
                               the faces present now (:mod:`edge_fer.sinks.room`),
                               ``tracks`` as in the HTTP ``/latest``.
                               Republished at most every 0.25 s when it changes.
``<topic>/stats``              ``edge-fer-mqtt-stats/1``, every ``stats_interval`` s:    no        0
                               ``{"ts", "status": <the pipeline status dict or null>,
                               "sink": stats()}``
=============================  ======================================================  ========  =====

All events go to the one ``<topic>/events`` topic (as Frigate does); subscribers filter on ``type``.
Events are never retained: a subscriber that connects later must not see an old ``face_appeared``.
paho's network thread reconnects with exponential back-off (``reconnect_min_delay`` ..
``reconnect_max_delay``) and the queue drains on reconnect; the queue, the drop policy and the stall
detection are described in :mod:`edge_fer.sinks.outbox`.

Nothing on the pipeline's thread waits on the network: ``emit`` and the constructor never raise on
transport errors and never block; ``flush()`` (which the pipeline calls after every frame with events)
only wakes the worker. Waiting for acknowledgements belongs to shutdown: ``close`` drains for at most
``close_timeout`` seconds, stops paho's thread within a bounded time even when the broker no longer
reads its socket, and counts what is still undelivered as dropped.

Home Assistant discovery (``mqtt.discovery``): :mod:`edge_fer.sinks.hass`.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from edge_fer import jsondoc, jsonutil
from edge_fer.config import MqttConfig
from edge_fer.errors import ConfigError, MissingExtraError
from edge_fer.labels import LABELS
from edge_fer.sinks import hass
from edge_fer.sinks.outbox import MqttStats, Outbox
from edge_fer.sinks.room import Room
from edge_fer.types import Event, Sink, StatusProvider, status_dict

log = logging.getLogger(__name__)

_STATE_MIN_INTERVAL_S = 0.25
DEFAULT_TOPIC = "edge-fer"


def _import_paho() -> Any:
    try:
        import paho.mqtt.client as mqtt  # noqa: PLC0415 (optional extra, imported lazily)
    except ImportError as exc:
        raise MissingExtraError("the MQTT sink", "mqtt", "paho-mqtt") from exc
    if not hasattr(mqtt, "CallbackAPIVersion"):
        raise MissingExtraError("the MQTT sink", "mqtt", "paho-mqtt>=2.0")
    return mqtt


def _dumps(obj: Any) -> str:
    return jsonutil.dumps(obj, separators=(",", ":"))


class MqttSink(Sink):
    """Publishes events to an MQTT broker; see the module docstring for topics and the drop policy.

    ``options`` are checked by :mod:`edge_fer.config`; empty ``topic``, ``client_id``, ``username``
    and ``password`` mean "not set". Construction refuses a topic prefix with a wildcard and a
    ``keepalive`` under 5 s (``ConfigError``: the config does not check those), imports paho (``MissingExtraError`` when the ``mqtt`` extra is missing) and
    starts connecting in the background; it does not wait for the broker.
    """

    def __init__(
        self,
        options: MqttConfig,
        *,
        labels: Sequence[str] | None = None,
        status_provider: StatusProvider | None = None,
        keepalive: int = 30,
        device_name: str = "edge-fer",
        discovery_prefix: str = "homeassistant",
        stats_interval: float = 30.0,
        reconnect_min_delay: float = 1.0,
        reconnect_max_delay: float = 30.0,
        max_inflight: int = 20,
        close_timeout: float = 2.0,
        name: str = "mqtt",
    ) -> None:
        topic = (options.topic or DEFAULT_TOPIC).strip().rstrip("/")
        if not topic or any(c in topic for c in "+#\0"):
            raise ConfigError(f"mqtt.topic: {topic!r} is not a valid topic prefix (no '+', '#', not empty)")
        if int(keepalive) < 5:
            raise ConfigError(f"mqtt.keepalive: must be >= 5 seconds, not {keepalive!r}")
        from edge_fer.redact import register_secret

        register_secret(options.password)  # hidden from every log line and error from now on
        mqtt = _import_paho()
        self._mqtt = mqtt

        self.name = name
        self.host, self.port, self.qos = options.host, int(options.port), int(options.qos)
        self.availability_topic = f"{topic}/availability"
        self.events_topic = f"{topic}/events"
        self.state_topic = f"{topic}/state"
        self.stats_topic = f"{topic}/stats"
        self.discovery = bool(options.discovery)
        self.discovery_prefix = discovery_prefix.strip("/") or "homeassistant"
        self.device_name = device_name
        self.node_id = hass.node_id(topic)
        self.labels = tuple(labels) if labels else LABELS
        self.stats_interval = float(stats_interval)
        self.close_timeout = float(close_timeout)

        self._box = Outbox(
            int(options.queue_size), int(max_inflight), float(options.ack_timeout), f"{self.host}:{self.port}"
        )
        self._room = Room()
        self._state_dirty = False
        self._last_state = 0.0
        self._closed = False
        self._stop_worker = False
        self._warned_connect = False
        self._answered = False  # a CONNACK came on the current connection (paho callbacks)
        self._status_provider = status_provider

        client_id = options.client_id or f"edge-fer-{hass.slug(socket.gethostname())}-{uuid.uuid4().hex[:6]}"
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if options.username:
            client.username_pw_set(options.username, options.password or None)
        client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(reconnect_min_delay, reconnect_max_delay)
        client.max_inflight_messages_set(self._box.max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        self._client = client
        try:
            client.connect_async(self.host, self.port, int(keepalive))
        except ValueError as exc:
            raise ConfigError(f"mqtt: {exc}") from exc
        client.loop_start()  # paho's network thread: connects, retries with back-off, reconnects
        self._worker = threading.Thread(target=self._run, name="edge-fer-mqtt", daemon=True)
        self._worker.start()
        log.info("MQTT sink: connecting to %s:%d in the background (topic prefix %r)", self.host, self.port, topic)

    # -- wiring from the runtime ------------------------------------------------------------------
    def set_status_provider(self, fn: StatusProvider | None) -> None:
        """``fn()`` (the same status as the HTTP sink's) is included in ``<topic>/stats``."""
        self._status_provider = fn

    @property
    def connected(self) -> bool:
        """Connected and acknowledging (False while the broker is stalled)."""
        return self._box.sending

    # -- Sink -------------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Queue the event; O(1), never blocks on the network, never raises."""
        box = self._box
        try:
            d = event.to_dict()
        except Exception as exc:  # noqa: BLE001
            log.warning("MQTT sink: cannot serialize event %r: %s", event, exc)
            with box.cond:
                box.counts.errors += 1
                box.counts.dropped += 1
            return
        with box.cond:
            if box.put(d) and self._room.update(d):
                self._state_dirty = True

    def flush(self, timeout: float = 0.0) -> None:
        """Wake the worker; never waits by default (the pipeline calls this after every frame with
        events: the frame loop must not wait on the network). With ``timeout`` > 0 (shutdown), wait at
        most that long for queued events to be acknowledged; returns at once when disconnected or
        stalled (the queue then waits for the broker)."""
        box = self._box
        deadline = time.monotonic() + max(0.0, timeout)
        with box.cond:
            box.cond.notify_all()
            if timeout <= 0:
                return
            while box.sending and (box.queue or box.pending):
                box.reap()
                left = deadline - time.monotonic()
                if left <= 0 or not (box.queue or box.pending):
                    break
                box.cond.wait(min(left, 0.05))

    def close(self, timeout: float | None = None) -> None:
        """Drain (up to ``timeout``, default ``close_timeout``), publish retained ``offline``, disconnect
        cleanly (so the broker does not send the last will), stop the threads. Whatever is still queued
        is counted as dropped. Idempotent."""
        box = self._box
        with box.cond:
            if self._closed:
                return
            self._closed = True
            box.closing = True
        timeout = self.close_timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + max(0.0, timeout)
        self.flush(timeout=max(0.0, deadline - time.monotonic()))
        with box.cond:
            self._stop_worker = True
            box.cond.notify_all()
        self._worker.join(timeout=2.0)
        if box.sending:
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
        with box.cond:
            lost = box.abandon()
            summary = (box.counts.sent, box.counts.dropped, box.counts.stalls)
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

    def stats(self) -> MqttStats:
        """The counters: see :class:`~edge_fer.sinks.outbox.MqttStats`."""
        with self._box.cond:
            return self._box.snapshot()

    # -- paho callbacks (paho's network thread) ------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        box = self._box
        self._answered = True  # a CONNACK came, accepted or not
        if getattr(reason_code, "is_failure", False):
            with box.cond:
                box.connect_failed()
            log.error("MQTT sink: broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        client.publish(self.availability_topic, "online", qos=1, retain=True)
        if self.discovery:
            for cfg_topic, cfg in hass.discovery_configs(
                node=self.node_id,
                device_name=self.device_name,
                prefix=self.discovery_prefix,
                state_topic=self.state_topic,
                availability_topic=self.availability_topic,
                labels=self.labels,
            ):
                client.publish(cfg_topic, _dumps(cfg), qos=1, retain=True)
        with box.cond:
            queued = box.link_up()
            self._warned_connect = False
            self._state_dirty = True
        log.info("MQTT sink: connected to %s:%d (%d queued event(s) to send)", self.host, self.port, queued)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        box = self._box
        with box.cond:
            was = box.connected
            unexpected = box.link_down()
            # the socket opened but no CONNACK came before it closed: not an MQTT broker, or a hung one
            silent = not was and not box.closing and not self._answered
            if silent:
                box.connect_failed()
                first = not self._warned_connect
                self._warned_connect = True
            self._answered = False
        if unexpected:
            log.warning("MQTT sink: lost the broker (%s); reconnecting with back-off, events are queued", reason_code)
        elif silent:
            (log.warning if first else log.debug)(
                "MQTT sink: %s:%d took the connection but never answered as an MQTT broker (%s); retrying with "
                "back-off (events are queued, up to %d)",
                self.host,
                self.port,
                reason_code,
                box.size,
            )

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        with self._box.cond:
            self._box.connect_failed()
            first = not self._warned_connect
            self._warned_connect = True
        (log.warning if first else log.debug)(
            "MQTT sink: cannot connect to %s:%d; retrying with back-off (events are queued, up to %d)",
            self.host,
            self.port,
            self._box.size,
        )

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        with self._box.cond:
            self._box.acknowledged(mid)

    # -- worker thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        box = self._box
        next_stats = time.monotonic() + self.stats_interval if self.stats_interval > 0 else math.inf
        while True:
            item: dict[str, Any] | None = None
            do_state = do_stats = False
            with box.cond:
                while True:
                    box.reap()
                    if self._stop_worker:
                        return
                    now = time.monotonic()
                    box.check_stall(now)
                    if box.sending:
                        item = box.next_event()
                        if item is not None:
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
                    if self._state_dirty and box.connected:
                        wait = min(wait, max(0.0, _STATE_MIN_INTERVAL_S - (now - self._last_state)))
                    box.cond.wait(max(wait, 0.01))
                if do_state:
                    state = self._room.state(time.time())
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
                with box.cond:
                    box.publish_failed(dropped=False)

    def _publish_event(self, d: dict[str, Any]) -> None:
        box = self._box
        with box.cond:
            box.publishing = True
        try:
            info = self._client.publish(self.events_topic, _dumps(d), qos=self.qos, retain=False)
        except Exception as exc:  # noqa: BLE001 (payload too large, bad value: drop this one)
            log.warning("MQTT sink: dropping an event that cannot be published: %s", exc)
            info = None
        with box.cond:
            box.publishing = False
            ok, no_conn = self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN
            if info is None:
                box.publish_failed()
            elif info.rc == ok or (info.rc == no_conn and self.qos > 0):
                box.in_flight(info.mid, self.qos)  # QoS >= 1 without a connection: paho sends it on reconnect
            elif info.rc == no_conn:
                box.requeue(d)  # QoS 0 raced a disconnect: keep it for the reconnect
            else:
                box.publish_failed()

    def _stats_payload(self) -> dict[str, Any]:
        status = None
        if self._status_provider is not None:
            try:
                st = status_dict(self._status_provider())
                status = dict(st) if st is not None else None
            except Exception as exc:  # noqa: BLE001
                log.debug("MQTT sink: status provider failed: %s", exc)
        return jsondoc.document(
            "mqtt-stats", {"ts": round(time.time(), 6), "status": status, "sink": self.stats().to_dict()}
        )
