"""HTTP sink: health, Prometheus metrics and the latest events, served from a daemon thread.

Endpoints (GET):

``/healthz``
    200 and ``{"status": "ok", ...}`` when the pipeline's last frame is at most ``max_age_s`` seconds
    old (wall clock: ``last_frame_ts`` is seconds since the epoch, like ``Frame.ts``); otherwise 503 with
    ``status`` = ``"starting"`` (no frame yet), ``"stale"`` (last frame too old), ``"no-status"`` (no
    status provider set) or ``"error"`` (the provider raised). Suitable for a container/systemd health probe.
``/metrics``
    Prometheus text exposition format 0.0.4 (see :func:`render_metrics` for the metric names).
``/latest``
    ``{"ts", "events": [last N event dicts, oldest first], "tracks": {track_id: last event of each face
    still present}}``.
``/``
    A tiny JSON index of the above.

``HEAD`` is answered like ``GET``: the same status and headers, no body.

Host check (DNS rebinding): a web page in a browser on the device could otherwise point its own DNS
name at 127.0.0.1 and read ``/latest``. Requests whose ``Host`` header names anything else than
``localhost`` (or ``*.localhost``), an IP address (an IP literal cannot be rebound), the bound host name,
or this machine's name (``<hostname>``, ``<hostname>.local``) get 403, unless the name is listed in
``allowed_hosts`` (config ``http.allowed_hosts``: comma-separated; ``.example.com`` also allows its
subdomains; ``*`` turns the check off). Requests without a ``Host`` header (HTTP/1.0 tools) are answered.

``emit`` only records the event in memory under a lock: no network I/O on the pipeline's thread. The
server binds ``127.0.0.1`` unless told otherwise; ``port=0`` picks a free port, reported by ``.port``.
The status provider (``set_status_provider``) is called from the server's threads, once per request:
it must be thread-safe and cheap (return a snapshot).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping

from edge_fer.errors import ConfigError
from edge_fer.types import Event

log = logging.getLogger(__name__)

StatusProvider = Callable[[], Mapping[str, Any]]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STAGES = ("capture", "detect", "preprocess", "classify", "track", "sink")
_QUANTILES = (("p50_ms", "0.5"), ("p90_ms", "0.9"), ("p99_ms", "0.99"))
FACE_EVENT_TYPES = ("face_appeared", "expression_changed", "face")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sink: "HttpSink"


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "edge-fer"
    sys_version = ""
    timeout = 10  # a client that connects and sends nothing does not hold a thread forever

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._handle()

    def do_HEAD(self) -> None:  # noqa: N802: the same status and headers as GET, no body (see _send)
        self._handle()

    def _handle(self) -> None:
        sink = self.server.sink
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        host = self.headers.get("Host")
        if not sink.host_allowed(host):
            sink._rejected(host, self.address_string())
            self._send(403, _json_bytes({"error": "host not allowed", "hint": "add it to http.allowed_hosts"}),
                       "application/json")
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


class HttpSink:
    """Serves ``/healthz``, ``/metrics`` and ``/latest``; starts listening in the constructor.

    :param host: interface to bind; ``127.0.0.1`` by default (set ``0.0.0.0`` to expose it on the LAN).
    :param port: TCP port; 0 picks a free one (read ``.port``).
    :param max_age_s: ``/healthz`` is healthy while the last frame is at most this many seconds old.
    :param latest_size: how many recent events ``/latest`` keeps.
    :param allowed_hosts: more ``Host`` header names to answer (a comma-separated string or a list;
        ``.example.com`` includes subdomains; ``*``: any); see the module docstring for the defaults.
    :raises ConfigError: when the address cannot be bound (port in use, bad host).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        max_age_s: float = 10.0,
        latest_size: int = 50,
        allowed_hosts: str | Iterable[str] | None = None,
        name: str = "http",
    ) -> None:
        self.name = name
        self.host = host
        self.allowed_hosts = _host_names(allowed_hosts)
        self._trusted = {"localhost", _host_only(host)} - {"", "0.0.0.0", "::"}
        try:
            me = socket.gethostname().lower()
            self._trusted |= {me, f"{me}.local", me.split(".")[0]} - {""}
        except OSError:
            pass
        self._warned_hosts: set[str] = set()
        self.max_age_s = float(max_age_s)
        self._lock = threading.Lock()
        self._events: deque[dict[str, Any]] = deque(maxlen=max(1, int(latest_size)))
        self._tracks: dict[int, dict[str, Any]] = {}
        self._counters = {"sent": 0, "dropped": 0, "errors": 0, "requests": 0, "rejected_host": 0}
        self._status_provider: StatusProvider | None = None
        self._sinks: list[Any] = []
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
        """``fn()`` returns the pipeline's status dict (fps, frames, ..., stages); called per request."""
        self._status_provider = fn

    def set_sinks(self, sinks: Iterable[Any]) -> None:
        """Sinks whose ``stats()`` are exported as ``edge_fer_sink_*`` metrics (this one may be included)."""
        self._sinks = list(sinks)

    # -- Sink protocol ----------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        d = event.to_dict()
        with self._lock:
            self._events.append(d)
            self._counters["sent"] += 1
            tid = event.track_id
            if tid is not None:
                if event.type == "face_left":
                    self._tracks.pop(tid, None)
                elif event.type in FACE_EVENT_TYPES or event.label is not None:
                    self._tracks[tid] = d

    def flush(self) -> None:
        """Nothing is buffered for delivery: a no-op."""

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

    def stats(self) -> dict[str, int]:
        """``sent`` = events recorded, ``dropped`` = 0 (old ones roll off by design), ``errors``, ``requests``."""
        with self._lock:
            return dict(self._counters)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + n

    # -- Host check (DNS rebinding) -----------------------------------------------------------------
    def host_allowed(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` header is answered (see the module docstring)."""
        if header is None or "*" in self.allowed_hosts:
            return True
        name = _host_only(header)
        if not name:
            return False
        if name in self._trusted or name.endswith(".localhost") or name in self.allowed_hosts:
            return True
        if any(a.startswith(".") and (name.endswith(a) or name == a[1:]) for a in self.allowed_hosts):
            return True
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
            return True
        except ValueError:
            return False

    def _rejected(self, header: str | None, client: str) -> None:
        self._count("rejected_host")
        shown = repr((header or "")[:100])
        with self._lock:
            first = shown not in self._warned_hosts and len(self._warned_hosts) < 100
            if first:
                self._warned_hosts.add(shown)
        (log.warning if first else log.debug)(
            "HTTP sink: refused a request from %s for Host %s (not this device; add it to http.allowed_hosts "
            "if it is one of its names)", client, shown,
        )

    # -- what the endpoints return ------------------------------------------------------------------
    def _status(self) -> tuple[Mapping[str, Any] | None, str | None]:
        fn = self._status_provider
        if fn is None:
            return None, None
        try:
            st = fn()
            return (st if isinstance(st, Mapping) else None), None
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
            tracks = {str(k): v for k, v in sorted(self._tracks.items())}
        return {"ts": round(time.time(), 6), "events": events, "tracks": tracks}

    def metrics_text(self, now: float | None = None) -> str:
        st, err = self._status()
        sinks: dict[str, Mapping[str, Any]] = {}
        for s in self._sinks:
            try:
                sinks[str(getattr(s, "name", type(s).__name__))] = s.stats()
            except Exception as exc:  # noqa: BLE001
                log.debug("HTTP sink: stats() of %r failed: %s", s, exc)
        if not any(s is self for s in self._sinks):
            sinks.setdefault(self.name, self.stats())
        return render_metrics(st, sinks, now=now, status_error=err is not None)


# -- Prometheus text format -----------------------------------------------------------------------


def _fmt(value: Any) -> str:
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _label_value(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kw: Any) -> str:
    if not kw:
        return ""
    return "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in kw.items()) + "}"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._declared: set[str] = set()

    def metric(self, name: str, mtype: str, help_: str, value: Any, **labels: Any) -> None:
        if value is None:
            return
        try:
            text = _fmt(value)
        except (TypeError, ValueError):
            return
        if name not in self._declared:
            self._declared.add(name)
            self.lines.append(f"# HELP {name} {help_}")
            self.lines.append(f"# TYPE {name} {mtype}")
        self.lines.append(f"{name}{_labels(**labels)} {text}")


def render_metrics(
    status: Mapping[str, Any] | None,
    sinks: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    now: float | None = None,
    status_error: bool = False,
) -> str:
    """The ``/metrics`` body. Names (all prefixed ``edge_fer_``):

    ``up`` (1 while a status is available), ``fps``, ``frames_total``, ``faces_total``,
    ``low_quality_faces_total``, ``dropped_frames_total``, ``errors_total``, ``tracks``, ``uptime_seconds``,
    ``last_frame_age_seconds``, ``info{source,model}``,
    ``stage_latency_seconds{stage,quantile="0.5|0.9|0.99"}``, ``stage_latency_mean_seconds{stage}``,
    ``stage_latency_max_seconds{stage}`` (gauges over the pipeline's recent window, converted from ms),
    ``sink_sent_total{sink}``, ``sink_dropped_total{sink}``, ``sink_errors_total{sink}``, ``sink_queued{sink}``,
    ``sink_connected{sink}``.
    """
    now = time.time() if now is None else now
    w = _Writer()
    st = status or {}
    w.metric("edge_fer_up", "gauge", "1 when the pipeline reports its status, 0 otherwise.",
             0 if (status is None or status_error) else 1)
    w.metric("edge_fer_fps", "gauge", "Frames processed per second (recent window).", st.get("fps"))
    w.metric("edge_fer_frames_total", "counter", "Frames processed since start.", st.get("frames"))
    w.metric("edge_fer_faces_total", "counter", "Faces detected since start.", st.get("faces"))
    if st.get("low_quality_faces") is not None:
        w.metric("edge_fer_low_quality_faces_total", "counter",
                 "Face crops the quality gate marked low quality (reconstruction error above its threshold).",
                 st.get("low_quality_faces"))
    w.metric("edge_fer_dropped_frames_total", "counter",
             "Frames dropped by the source to stay on the latest frame.", st.get("dropped_frames"))
    w.metric("edge_fer_errors_total", "counter", "Errors in the pipeline since start.", st.get("errors"))
    w.metric("edge_fer_tracks", "gauge", "Faces currently tracked.", st.get("tracks"))
    w.metric("edge_fer_uptime_seconds", "gauge", "Seconds since the pipeline started.", st.get("uptime_s"))
    last = st.get("last_frame_ts")
    if last is not None:
        w.metric("edge_fer_last_frame_age_seconds", "gauge", "Seconds since the last processed frame.",
                 max(0.0, now - float(last)))
    if status is not None:
        w.metric("edge_fer_info", "gauge", "Source and model in use (value is always 1).", 1,
                 source=st.get("source", ""), model=st.get("model", ""))
    stages = st.get("stages") or {}
    if isinstance(stages, Mapping):
        ordered = [s for s in STAGES if s in stages] + sorted(s for s in stages if s not in STAGES)
        for stage in ordered:
            q = stages[stage] or {}
            for key, quant in _QUANTILES:
                if q.get(key) is not None:
                    w.metric("edge_fer_stage_latency_seconds", "gauge",
                             "Per-stage latency quantiles over the recent window, seconds.",
                             float(q[key]) / 1000.0, stage=stage, quantile=quant)
        for key, what in (("mean", "mean"), ("max", "maximum")):
            for stage in ordered:
                q = stages[stage] or {}
                if q.get(f"{key}_ms") is not None:
                    w.metric(f"edge_fer_stage_latency_{key}_seconds", "gauge",
                             f"Per-stage {what} latency over the recent window, seconds.",
                             float(q[f"{key}_ms"]) / 1000.0, stage=stage)
    for key, mtype, help_ in (
        ("sent", "counter", "Events delivered by the sink."),
        ("dropped", "counter", "Events the sink dropped (queue full, gave up)."),
        ("errors", "counter", "Transport errors seen by the sink (failed connects, publish errors)."),
        ("queued", "gauge", "Events waiting in the sink's queue."),
        ("inflight", "gauge", "Events handed to the server and not yet acknowledged."),
        ("connected", "gauge", "1 while the sink is connected to its server and it acknowledges."),
        ("stalled", "gauge", "1 while the server is connected but acknowledges nothing (frozen, half-open)."),
    ):
        suffix = "_total" if mtype == "counter" else ""
        for sink_name, s in (sinks or {}).items():
            if isinstance(s, Mapping) and key in s:
                w.metric(f"edge_fer_sink_{key}{suffix}", mtype, help_, s[key], sink=sink_name)
    return "\n".join(w.lines) + "\n"


def _host_only(header: str) -> str:
    """The host part of a ``Host`` header (no port, no IPv6 brackets, no trailing dot), lower case."""
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else ""
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _host_names(value: str | Iterable[str] | None) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return frozenset(n for n in (str(i).strip().lower().rstrip(".") for i in items) if n)


def _json_default(o: Any) -> Any:
    for attr in ("tolist", "item"):
        if hasattr(o, attr):
            return getattr(o, attr)()
    return str(o)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, default=_json_default).encode()
