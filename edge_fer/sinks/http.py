"""HTTP sink: health, Prometheus metrics and the latest events, served from a daemon thread.

Endpoints (GET):

``/healthz``
    200 and ``{"status": "ok", ...}`` when the pipeline's last frame is at most ``max_age_s`` seconds
    old (wall clock: ``last_frame_ts`` is seconds since the epoch, like ``Frame.ts``); otherwise 503 with
    ``status`` = ``"starting"`` (no frame yet), ``"stale"`` (last frame too old), ``"no-status"`` (no
    status provider set) or ``"error"`` (the provider raised). Suitable for a container/systemd health probe.
``/metrics``
    Prometheus text exposition format 0.0.4 (see :func:`~edge_fer.sinks.prometheus.render_metrics`
    for the metric names).
``/latest``
    ``{"schema": "edge-fer-latest/1", "version", "created", "ts", "events": [last N event dicts, oldest
    first], "tracks": [{"track_id", "label", "confidence", "scores", "box", "ts"} of each face still
    present]}``: ``tracks`` has the shape of the MQTT state's (:mod:`edge_fer.sinks.room`).
``/``
    A tiny JSON index of the above.

``HEAD`` is answered like ``GET``: the same status and headers, no body. Requests for another host
name than this device's get 403 (DNS rebinding: :mod:`edge_fer.sinks.hostcheck`).

``emit`` only records the event in memory under a lock: no network I/O on the pipeline's thread. The
server binds ``127.0.0.1`` unless told otherwise; ``port=0`` picks a free port, reported by ``.port``.
The status provider (``set_status_provider``) is called from the server's threads, once per request:
it must be thread-safe and cheap (return a snapshot).
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge_fer import jsondoc, jsonutil
from edge_fer.config import HttpConfig
from edge_fer.errors import ConfigError
from edge_fer.sinks.hostcheck import HostCheck
from edge_fer.sinks.prometheus import PROMETHEUS_CONTENT_TYPE, render_metrics
from edge_fer.sinks.room import Room
from edge_fer.types import Event, Sink, SinkStats, StatusProvider, status_dict

log = logging.getLogger(__name__)


@dataclass(eq=False)
class HttpStats(SinkStats):
    """``sent`` = events recorded, ``dropped`` = 0 (old ones roll off by design), ``errors``; plus the
    requests answered and those refused by the Host check."""

    requests: int = 0
    rejected_host: int = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sink: HttpSink


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "edge-fer"
    sys_version = ""
    timeout = 10  # a client that connects and sends nothing does not hold a thread forever

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._handle()

    def do_HEAD(self) -> None:  # noqa: N802 (http.server naming): the same status and headers as GET, no body (see _send)
        self._handle()

    def _handle(self) -> None:
        sink = self.server.sink
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        host = self.headers.get("Host")
        if not sink.host_check.allows(host):
            sink._rejected(host, self.address_string())
            self._send(
                403,
                _json_bytes({"error": "host not allowed", "hint": "add it to http.allowed_hosts"}),
                "application/json",
            )
            return
        try:
            if path == "/healthz":
                code, body = sink.health()
                self._send(code, _json_bytes(body), "application/json")
            elif path == "/metrics":
                self._send(200, sink.metrics_text().encode(), PROMETHEUS_CONTENT_TYPE)
            elif path == "/latest":
                self._send(200, _json_bytes(sink.latest()), "application/json")
            elif path == "/":
                index = {"endpoints": ["/healthz", "/metrics", "/latest"]}
                self._send(200, _json_bytes(index), "application/json")
            else:
                self._send(404, _json_bytes({"error": "not found", "path": path}), "application/json")
        except Exception:  # a bug in a provider must not kill the server thread
            log.exception("HTTP sink: error while serving %s", path)
            sink._count("errors")
            try:
                self._send(500, _json_bytes({"error": "internal error"}), "application/json")
            except OSError:
                pass

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.server.sink._count("requests")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("HTTP %s - %s", self.address_string(), format % args)


class HttpSink(Sink):
    """Serves ``/healthz``, ``/metrics`` and ``/latest``; starts listening in the constructor.

    :param options: ``host`` (``127.0.0.1``: loopback; ``0.0.0.0`` exposes it on the LAN), ``port``
        (0 picks a free one: read ``.port``) and ``allowed_hosts`` (more ``Host`` header names to answer;
        see :mod:`edge_fer.sinks.hostcheck`), checked by :mod:`edge_fer.config`.
    :param max_age_s: ``/healthz`` is healthy while the last frame is at most this many seconds old.
    :param latest_size: how many recent events ``/latest`` keeps.
    :raises ConfigError: when the address cannot be bound (port in use, bad host).
    """

    def __init__(
        self,
        options: HttpConfig,
        *,
        status_provider: StatusProvider | None = None,
        max_age_s: float = 10.0,
        latest_size: int = 50,
        name: str = "http",
    ) -> None:
        host, port = options.host, options.port
        self.name = name
        self.host = host
        self.host_check = HostCheck(host, options.allowed_hosts)
        self._warned_hosts: set[str] = set()
        self.max_age_s = float(max_age_s)
        self._lock = threading.Lock()
        self._events: deque[dict[str, Any]] = deque(maxlen=max(1, int(latest_size)))
        self._room = Room()
        self._counts = HttpStats()
        self._status_provider = status_provider
        self._sinks: list[Sink] = []
        self._closed = False
        server_cls = _Server6 if ":" in host else _Server
        try:
            self._server = server_cls((host, int(port)), _Handler)
        except (OSError, OverflowError, ValueError) as exc:
            raise ConfigError(f"http: cannot listen on {host}:{port}: {exc}") from exc
        self._server.sink = self
        self.port: int = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="edge-fer-http", daemon=True
        )
        self._thread.start()
        log.info("HTTP sink listening on %s", self.url)

    # -- wiring from the runtime ------------------------------------------------------------------
    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}"

    def set_status_provider(self, fn: StatusProvider | None) -> None:
        """``fn()`` returns the pipeline's status (fps, frames, ..., stages); called per request."""
        self._status_provider = fn

    def set_sinks(self, sinks: Sequence[Sink]) -> None:
        """Sinks whose ``stats()`` are exported as ``edge_fer_sink_*`` metrics (this one may be included)."""
        self._sinks = list(sinks)

    # -- Sink -------------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        d = event.to_dict()
        with self._lock:
            self._events.append(d)
            self._counts.sent += 1
            self._room.update(d)

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._server.shutdown()
        finally:
            self._server.server_close()
            self._thread.join(timeout=2.0)

    def stats(self) -> HttpStats:
        with self._lock:
            return dataclasses.replace(self._counts)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            setattr(self._counts, key, getattr(self._counts, key) + n)

    def _rejected(self, header: str | None, client: str) -> None:
        self._count("rejected_host")
        shown = repr((header or "")[:100])
        with self._lock:
            first = shown not in self._warned_hosts and len(self._warned_hosts) < 100
            if first:
                self._warned_hosts.add(shown)
        (log.warning if first else log.debug)(
            "HTTP sink: refused a request from %s for Host %s (not this device; add it to http.allowed_hosts "
            "if it is one of its names)",
            client,
            shown,
        )

    # -- what the endpoints return ------------------------------------------------------------------
    def _status(self) -> tuple[Mapping[str, Any] | None, str | None]:
        fn = self._status_provider
        if fn is None:
            return None, None
        try:
            return status_dict(fn()), None
        except Exception as exc:  # noqa: BLE001 (the provider belongs to someone else)
            self._count("errors")
            log.warning("HTTP sink: status provider failed: %s", exc)
            return None, f"{type(exc).__name__}: {exc}"

    def health(self, now: float | None = None) -> tuple[int, dict[str, Any]]:
        """(HTTP status code, JSON body) for ``/healthz``. See the module docstring for the rule."""
        now = time.time() if now is None else now
        st, err = self._status()
        body: dict[str, Any] = {"max_age_s": self.max_age_s}
        if err is not None:
            body.update(status="error", error=err)
            return 503, body
        if st is None:
            body["status"] = "no-status"
            return 503, body
        for key in ("fps", "frames", "faces", "tracks", "uptime_s", "source", "model"):
            if key in st:
                body[key] = st[key]
        last = st.get("last_frame_ts")
        if last is None:
            body.update(status="starting", last_frame_age_s=None)
            return 503, body
        age = now - float(last)
        body["last_frame_age_s"] = round(age, 3)
        if age <= self.max_age_s:
            body["status"] = "ok"
            return 200, body
        body["status"] = "stale"
        return 503, body

    def latest(self) -> dict[str, Any]:
        with self._lock:
            events = list(self._events)
            tracks = self._room.tracks()
        return jsondoc.document("latest", {"ts": round(time.time(), 6), "events": events, "tracks": tracks})

    def metrics_text(self, now: float | None = None) -> str:
        st, err = self._status()
        sinks: dict[str, Mapping[str, Any]] = {}
        for s in self._sinks:
            try:
                sinks[s.name] = s.stats().to_dict()
            except Exception as exc:  # noqa: BLE001
                log.debug("HTTP sink: stats() of %r failed: %s", s, exc)
        if not any(s is self for s in self._sinks):
            sinks.setdefault(self.name, self.stats().to_dict())
        return render_metrics(st, sinks, now=now, status_error=err is not None)


def _json_bytes(obj: Any) -> bytes:
    return jsonutil.dumps(obj).encode()
