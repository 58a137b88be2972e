"""The MQTT sink's delivery bookkeeping, apart from paho: the bounded queue, the events in flight,
the link state, the stall detection and the counters (:class:`MqttStats`).

Delivery and drop policy: ``emit`` only appends to an in-memory queue (bounded by ``queue_size``) and
returns; a worker thread hands queued events to paho while connected, keeping at most ``max_inflight``
unacknowledged. While the broker is unreachable (down at start, or gone mid-run) events wait in the
queue; when it is full the **oldest** event is dropped and counted in ``stats().dropped``. With
QoS 1, events handed to paho before a disconnect are resent after reconnect (at-least-once: a
subscriber may rarely see a duplicate). ``sent`` counts events the broker acknowledged (QoS >= 1) or
that were written to the socket (QoS 0).

A **stalled** broker (connected, but no acknowledgement for ``ack_timeout`` seconds while events are in
flight: a frozen process, a half-open TCP connection) is treated like a disconnected one: it is logged
(once per stall, and again when it answers), ``stats()`` reports ``stalled`` = 1 and ``connected`` = 0,
no further events are handed to paho (at most ``max_inflight`` wait there), and new events wait in the
bounded queue (oldest dropped when full). When acknowledgements resume, the queue drains; QoS >= 1
events in flight are delivered at least once. (With QoS 0 nothing is acknowledged, so a stall shows only
once the socket's buffers fill.)

Threads: the pipeline's (``emit``), paho's network thread (its callbacks) and the sink's worker share
one :class:`Outbox`; every method expects its ``cond`` to be held (``with box.cond:``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from edge_fer.types import SinkStats

log = logging.getLogger("edge_fer.sinks.mqtt")  # the MQTT sink's messages, under one logger


@dataclass(eq=False)
class MqttStats(SinkStats):
    """``errors`` = connect failures + unexpected disconnects + publish errors + stalls; ``connected``
    (0/1) is connected *and* acknowledging; ``stalled`` (0/1) is connected but no acknowledgement for
    ``ack_timeout`` s; ``inflight``: handed to paho, not acknowledged yet."""

    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    publish_errors: int = 0
    stalls: int = 0
    inflight: int = 0
    connected: int = 0
    stalled: int = 0


class Outbox:
    def __init__(self, size: int, max_inflight: int, ack_timeout: float, broker: str) -> None:
        self.cond = threading.Condition()
        self.size = size
        self.max_inflight = max(1, max_inflight)
        self.ack_timeout = ack_timeout
        self.broker = broker  # "host:port", for messages
        self.queue: deque[dict[str, Any]] = deque()
        self.pending: deque[tuple[int, int]] = deque()  # (mid, qos) of events handed to paho, not yet done
        self.acked: set[int] = set()  # mids paho reported as published (PUBACK for QoS 1, written for QoS 0)
        self.publishing = False  # the worker is between client.publish() and recording the mid
        self.connected = False
        self.stalled = False
        self.closing = False
        # stall detection: the last time the broker made progress (an event acknowledged, a connect, or
        # the first event handed over after none was in flight)
        self.last_progress = time.monotonic()
        self._stalled_since = 0.0
        self._warned_drop = False
        self.counts = MqttStats()

    @property
    def sending(self) -> bool:
        """Connected and acknowledging: events may be handed to paho."""
        return self.connected and not self.stalled

    # -- the queue ---------------------------------------------------------------------------------
    def put(self, event: dict[str, Any]) -> bool:
        """Queue an event (the oldest is dropped when full); False (dropped) once closing."""
        if self.closing:
            self.counts.dropped += 1
            return False
        self.queue.append(event)
        if len(self.queue) > self.size:
            self.queue.popleft()
            self.counts.dropped += 1
            if not self._warned_drop:
                self._warned_drop = True
                why = "stalled" if self.stalled else "not keeping up" if self.connected else "unreachable"
                log.warning(
                    "MQTT sink: queue full (%d events) while the broker is %s; dropping the oldest", self.size, why
                )
        self.cond.notify_all()
        return True

    def next_event(self) -> dict[str, Any] | None:
        """The next event to hand to paho, when sending and the in-flight window has room."""
        if self.sending and self.queue and len(self.pending) < self.max_inflight:
            return self.queue.popleft()
        return None

    def in_flight(self, mid: int, qos: int) -> None:
        """``mid`` was handed to paho (sent now, or kept by paho for the reconnect: QoS >= 1)."""
        if not self.pending:
            self.last_progress = time.monotonic()  # the ack clock starts with the first in flight
        self.pending.append((mid, qos))

    def requeue(self, event: dict[str, Any]) -> None:
        """A QoS 0 event that raced a disconnect: first in line for the reconnect."""
        self.queue.appendleft(event)
        if len(self.queue) > self.size:
            self.queue.pop()
            self.counts.dropped += 1

    def publish_failed(self, dropped: bool = True) -> None:
        self.counts.errors += 1
        self.counts.publish_errors += 1
        self.counts.dropped += dropped

    def acknowledged(self, mid: int) -> None:
        self.acked.add(mid)
        self.cond.notify_all()

    def reap(self) -> None:
        """Count finished publishes as sent; forget QoS 0 ones lost with a connection."""
        if self.pending:
            keep: deque[tuple[int, int]] = deque()
            for mid, qos in self.pending:
                if mid in self.acked:
                    self.acked.discard(mid)
                    self.counts.sent += 1
                    self.last_progress = time.monotonic()
                elif qos == 0 and not self.connected:
                    self.counts.dropped += 1
                else:
                    keep.append((mid, qos))
            self.pending = keep
        if not self.publishing:
            # What is left are acks of other messages (availability, state, stats, discovery): forget them.
            self.acked.clear()

    def abandon(self) -> int:
        """At close: count what is still queued or in flight as dropped; returns how many."""
        self.reap()
        lost = len(self.queue) + len(self.pending)
        self.queue.clear()
        self.pending.clear()
        self.counts.dropped += lost
        self.connected = False
        return lost

    # -- the link ----------------------------------------------------------------------------------
    def link_up(self) -> int:
        """Connected; returns the number of events queued for it."""
        self.connected = True
        self.last_progress = time.monotonic()
        self.counts.connects += 1
        self._warned_drop = False
        self.cond.notify_all()
        return len(self.queue)

    def link_down(self) -> bool:
        """Disconnected; True when it was connected and it was not our doing (close)."""
        was, self.connected = self.connected, False
        self.stalled = False  # "disconnected" says it now; paho resends the QoS >= 1 ones on reconnect
        unexpected = was and not self.closing
        if unexpected:
            self.counts.disconnects += 1
            self.counts.errors += 1
        self.cond.notify_all()
        return unexpected

    def connect_failed(self) -> None:
        self.counts.errors += 1
        self.counts.connect_failures += 1

    def check_stall(self, now: float) -> None:
        """Enter / leave the stalled state (see the module docstring); logs each transition."""
        stalled = self.connected and bool(self.pending) and now - self.last_progress > self.ack_timeout
        if stalled == self.stalled:
            return
        self.stalled = stalled
        if stalled:
            self._stalled_since = now
            self.counts.stalls += 1
            self.counts.errors += 1
            log.warning(
                "MQTT sink: broker %s has acknowledged nothing for %.1fs (stalled); holding events in the "
                "queue (up to %d, then the oldest are dropped) until it answers",
                self.broker,
                now - self.last_progress,
                self.size,
            )
        else:
            log.info(
                "MQTT sink: broker %s answers again after %.1fs stalled (%d event(s) queued)",
                self.broker,
                now - self._stalled_since,
                len(self.queue),
            )
        self.cond.notify_all()

    def snapshot(self) -> MqttStats:
        self.reap()
        self.check_stall(time.monotonic())
        return dataclasses.replace(
            self.counts,
            queued=len(self.queue),
            inflight=len(self.pending),
            connected=int(self.sending),
            stalled=int(self.stalled),
        )
