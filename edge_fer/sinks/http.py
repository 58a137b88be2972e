"""HTTP sink: the live page, health, Prometheus metrics and the latest events, served from daemon threads.

Endpoints (GET):

``/``, ``/app.js``, ``/style.css``
    The live page (:mod:`edge_fer.web`, docs/live-page.md): the faces in view with their probabilities,
    a timeline of the last minutes, the pipeline's health. It polls ``/api/state`` once a second.
``/api/state``
    What the page shows, as JSON (:meth:`HttpSink.state`): faces, timeline, health, sinks, preview.
``/stream.mjpg``
    The annotated live preview (``multipart/x-mixed-replace`` JPEG frames), only with ``http.preview``
    (404 otherwise); at most ``http.preview_max_viewers`` at once, 503 beyond (:mod:`edge_fer.sinks.preview`).
``/healthz``
    200 and ``{"status": "ok", ...}`` when the pipeline's last frame is at most ``max_age_s`` seconds
    old (wall clock: ``last_frame_ts`` is seconds since the epoch, like ``Frame.ts``); otherwise 503 with
    ``status`` = ``"starting"`` (no frame yet), ``"stale"`` (last frame too old), ``"source-down"`` (a
    camera or stream that is lost and being reopened, however recent its last frame), ``"no-status"``
    (no status provider set) or ``"error"`` (the provider raised). Suitable for a container/systemd health probe.
``/metrics``
    Prometheus text exposition format 0.0.4 (see :func:`~edge_fer.sinks.prometheus.render_metrics`
    for the metric names).
``/latest``
    ``{"schema": "edge-fer-latest/1", "version", "created", "ts", "events": [last N event dicts, oldest
    first], "tracks": [{"track_id", "label", "confidence", "scores", "box", "ts"} of each face still
    present]}``: ``tracks`` has the shape of the MQTT state's (:mod:`edge_fer.sinks.room`).
``/api``
    A tiny JSON index of the above.

``HEAD`` is answered like ``GET``: the same status and headers, no body. Requests for another host
name than this device's get 403 (DNS rebinding: :mod:`edge_fer.sinks.hostcheck`). With ``http.token``
every request needs the token, else 401 (:mod:`edge_fer.sinks.auth`); the config refuses a
non-loopback address without one.

``emit`` only records the event in memory under a lock: no network I/O on the pipeline's thread; the
frame observer (:meth:`HttpSink.frame_observer`) does nothing unless the page or the preview is being
watched. The server binds ``127.0.0.1`` unless told otherwise; ``port=0`` picks a free port, reported
by ``.port``. The status provider (``set_status_provider``) is called from the server's threads, once
per request: it must be thread-safe and cheap (return a snapshot). Nothing secret is served: the
source name is redacted by the pipeline, sink stats are counters.
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
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from edge_fer import jsondoc, jsonutil
from edge_fer.config import HttpConfig
from edge_fer.errors import ConfigError
from edge_fer.redact import register_secret
from edge_fer.sinks.auth import TokenCheck
from edge_fer.sinks.hostcheck import HostCheck
from edge_fer.sinks.preview import CONTENT_TYPE, Preview, caption, part, socket_open
from edge_fer.sinks.prometheus import PROMETHEUS_CONTENT_TYPE, render_metrics
from edge_fer.sinks.room import Room
from edge_fer.sinks.timeline import Timeline
from edge_fer.types import Event, Frame, FrameObserver, Sink, SinkStats, StatusProvider, status_dict

log = logging.getLogger(__name__)


@dataclass(eq=False)
class HttpStats(SinkStats):
    """``sent`` = events recorded, ``dropped`` = 0 (old ones roll off by design), ``errors``; plus the
    requests answered and those refused by the Host check or for want of the token."""

    requests: int = 0
    rejected_host: int = 0
    rejected_token: int = 0


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
    timeout = 10  # a client that sends nothing, or stops reading, does not hold a thread forever

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._handle()

    def do_HEAD(self) -> None:  # noqa: N802 (http.server naming): the same status and headers as GET, no body (see _send)
        self._handle()

    def _handle(self) -> None:
        try:
            self._route()
        except OSError:  # the client went away, or stopped reading for longer than ``timeout``
            self.close_connection = True

    def _route(self) -> None:
        sink = self.server.sink
        raw_path, _, raw_query = self.path.partition("?")
        path = raw_path.rstrip("/") or "/"
        host = self.headers.get("Host")
        if not sink.host_check.allows(host):
            sink._rejected(host, self.address_string())
            self._send(
                403,
                _json_bytes({"error": "host not allowed", "hint": "add it to http.allowed_hosts"}),
                "application/json",
            )
            return
        query = {"token": _query_tokens(raw_query)} if raw_query else {}
        auth = sink.token_check
        if auth.required(path) and not auth.allows(
            self.headers.get("Authorization"), self.headers.get("Cookie"), query
        ):
            sink._unauthorized(self.address_string(), bool(query.get("token")) or "Authorization" in self.headers)
            self._unauthorized(path)
            return
        try:
            if query.get("token") and path in _PAGES and auth.enabled:
                # the browser keeps the token in a cookie; the URL it shows (and its history) loses it
                self._send(303, b"", "text/plain", {"Location": path, "Set-Cookie": auth.set_cookie()})
            elif path in _PAGES:
                asset, ctype = sink.asset(_PAGES[path])
                self._send(200, asset, ctype, _PAGE_HEADERS)
            elif path == "/api/state":
                self._send(200, _json_bytes(sink.state()), "application/json")
            elif path == "/stream.mjpg" and sink.preview is not None:
                self._stream(sink.preview)
            elif path == "/healthz":
                code, body = sink.health()
                self._send(code, _json_bytes(body), "application/json")
            elif path == "/metrics":
                self._send(200, sink.metrics_text().encode(), PROMETHEUS_CONTENT_TYPE)
            elif path == "/latest":
                self._send(200, _json_bytes(sink.latest()), "application/json")
            elif path == "/api":
                index = {"endpoints": ["/", "/api/state", "/healthz", "/metrics", "/latest"]}
                if sink.preview is not None:
                    index["endpoints"].append("/stream.mjpg")
                self._send(200, _json_bytes(index), "application/json")
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            else:
                self._send(404, _json_bytes({"error": "not found", "path": path[:200]}), "application/json")
        except OSError:
            raise
        except Exception:  # a bug in a provider must not kill the server thread
            log.exception("HTTP sink: error while serving %s", path[:200])
            sink._count("errors")
            try:
                self._send(500, _json_bytes({"error": "internal error"}), "application/json")
            except OSError:
                pass

    def _unauthorized(self, path: str) -> None:
        headers = {"WWW-Authenticate": 'Bearer realm="edge-fer"'}
        if path in _PAGES and path == "/":
            self._send(401, _TOKEN_PAGE, "text/html; charset=utf-8", {**_PAGE_HEADERS, **headers})
        else:
            body = {"error": "token required", "hint": "open /?token=<http.token>, or send 'Authorization: Bearer'"}
            self._send(401, _json_bytes(body), "application/json", headers)

    def _stream(self, preview: Preview) -> None:
        """The MJPEG preview: one part per encoded frame until the client goes or the server stops."""
        client = self.address_string()
        if self.command == "HEAD":
            self._send(200, b"", CONTENT_TYPE)
            return
        if not preview.join(client, socket_open(self.connection)):
            body = {"error": "too many preview viewers", "max_viewers": preview.max_viewers}
            self._send(503, _json_bytes(body), "application/json", {"Retry-After": "10"})
            return
        try:
            # a small kernel buffer per viewer: a viewer that stops reading blocks its own thread soon,
            # and is dropped after the socket timeout (``timeout``), instead of queueing megabytes
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _STREAM_SNDBUF)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.server.sink._count("requests")
            seq = 0
            while True:
                got = preview.next_frame(seq, timeout=5.0)
                if got is None:  # the server stops
                    break
                seq, jpeg = got
                if jpeg:
                    self.wfile.write(part(jpeg))  # blocks this viewer's thread only; socket timeout bounds it
        except OSError:  # gone, or stopped reading for longer than the socket timeout
            pass
        finally:
            preview.leave(client)
            self.close_connection = True

    def _send(self, code: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.server.sink._count("requests")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("HTTP %s - %s", self.address_string(), (format % args)[:300])


# the page and its assets: path -> file in edge_fer/web
_PAGES = {"/": "index.html", "/app.js": "app.js", "/style.css": "style.css"}
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# everything from this device only (no CDN, no inline script); no framing; the token never leaks as a referrer
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_TOKEN_PAGE = (
    b"<!doctype html><html lang=en><meta charset=utf-8><title>edge-fer: token required</title>"
    b"<body><h1>Token required</h1>"
    b"<p>This edge-fer device serves its live page to holders of its token only. Open "
    b"<code>http://&lt;device&gt;:&lt;port&gt;/?token=&lt;http.token&gt;</code> once: the browser then keeps "
    b"it in a cookie.</p></body></html>"
)


class HttpSink(Sink):
    """Serves the live page, ``/healthz``, ``/metrics`` and ``/latest``; starts listening in the constructor.

    :param options: the ``[http]`` section (checked by :mod:`edge_fer.config`): ``host`` (``127.0.0.1``:
        loopback; another address needs ``token``), ``port`` (0 picks a free one: read ``.port``),
        ``allowed_hosts`` (more ``Host`` header names to answer; :mod:`edge_fer.sinks.hostcheck`),
        ``token`` and ``public_metrics`` (:mod:`edge_fer.sinks.auth`), ``preview*`` (:mod:`edge_fer.sinks.preview`).
    :param labels: the model's labels, in order (the page's probability bars).
    :param max_age_s: ``/healthz`` is healthy while the last frame is at most this many seconds old.
    :param latest_size: how many recent events ``/latest`` keeps.
    :param timeline_s: how many seconds of label history the page's timeline shows.
    :raises ConfigError: when the address cannot be bound (port in use, bad host).
    """

    def __init__(
        self,
        options: HttpConfig,
        *,
        labels: Sequence[str] = (),
        status_provider: StatusProvider | None = None,
        max_age_s: float = 10.0,
        latest_size: int = 50,
        timeline_s: float = 300.0,
        name: str = "http",
    ) -> None:
        host, port = options.host, options.port
        self.name = name
        self.host = host
        self.labels = tuple(labels)
        self.host_check = HostCheck(host, options.allowed_hosts)
        if options.token:
            register_secret(options.token)  # never in a log line, whatever logs it
        self._warned_hosts: set[str] = set()
        self._warned_clients: set[str] = set()
        self.max_age_s = float(max_age_s)
        self._lock = threading.Lock()
        self._events: deque[dict[str, Any]] = deque(maxlen=max(1, int(latest_size)))
        self._room = Room()
        self._timeline = Timeline(timeline_s)
        self._counts = HttpStats()
        self._status_provider = status_provider
        self._sinks: list[Sink] = []
        self._closed = False
        self._assets: dict[str, tuple[bytes, str]] = {}
        self._page_seen = -1e9  # monotonic time of the last /api/state request
        self._faces: tuple[float, list[dict[str, Any]]] | None = None  # (monotonic, faces) from the frame loop
        server_cls = _Server6 if ":" in host else _Server
        try:
            self._server = server_cls((host, int(port)), _Handler)
        except (OSError, OverflowError, ValueError) as exc:
            raise ConfigError(f"http: cannot listen on {host}:{port}: {exc}") from exc
        self._server.sink = self
        self.port: int = int(self._server.server_address[1])
        self.token_check = TokenCheck(options.token, self.port, options.public_metrics)
        self.preview: Preview | None = None
        if options.preview:
            self.preview = Preview(options.preview_fps, options.preview_max_viewers, options.preview_width)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="edge-fer-http", daemon=True
        )
        self._thread.start()
        log.info(
            "HTTP sink listening on %s (live page at /%s%s)",
            self.url,
            "; token required" if self.token_check.enabled else "",
            "; /metrics and /healthz without it" if self.token_check.enabled and options.public_metrics else "",
        )

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

    def frame_observer(self) -> FrameObserver:
        return self._observe

    def _observe(self, frame: Frame, tracks: Sequence[Any]) -> None:
        """On the frame loop, after every frame: nothing unless the page polled in the last few seconds
        (then a snapshot of the faces) or the preview's encoder waits for a frame (then a copy of it)."""
        preview = self.preview
        want_frame = preview is not None and preview.wanted
        now = time.monotonic()
        if not want_frame and now - self._page_seen > _PAGE_ACTIVE_S:
            return
        faces = self._snapshot(frame, tracks)
        if want_frame and preview is not None:
            preview.offer(frame.image, [(f["box"], caption(f["track_id"], f["label"], f["confidence"])) for f in faces])
        with self._lock:
            self._faces = (now, faces)

    def _snapshot(self, frame: Frame, tracks: Sequence[Any]) -> list[dict[str, Any]]:
        """The confirmed faces seen in this frame: id, stable label, its probability, all probabilities, box."""
        labels = self.labels
        out = []
        for t in tracks:
            if not t.confirmed or t.last_frame != frame.index:
                continue
            scores = [round(float(p), 4) for p in t.scores]
            label = t.label or (labels[scores.index(max(scores))] if labels else "")
            conf = scores[labels.index(label)] if label in labels else None
            out.append(
                {
                    "track_id": t.id,
                    "label": label,
                    "confidence": conf,
                    "scores": dict(zip(labels, scores)),
                    "box": list(t.box),
                    "since": round(t.first_ts, 3),
                }
            )
        return out

    # -- Sink -------------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        d = event.to_dict()
        with self._lock:
            self._events.append(d)
            self._counts.sent += 1
            self._room.update(d)
            self._timeline.update(d)

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.preview is not None:
            self.preview.close()
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

    def _unauthorized(self, client: str, wrong: bool) -> None:
        self._count("rejected_token")
        with self._lock:
            first = client not in self._warned_clients and len(self._warned_clients) < 100
            if first:
                self._warned_clients.add(client)
        (log.warning if first else log.debug)(
            "HTTP sink: refused a request from %s: %s (http.token)", client, "wrong token" if wrong else "no token"
        )

    # -- what the endpoints return ------------------------------------------------------------------
    def asset(self, name: str) -> tuple[bytes, str]:
        """(bytes, content type) of a file of the page (:mod:`edge_fer.web`), read once."""
        if name not in self._assets:
            body = resources.files("edge_fer.web").joinpath(name).read_bytes()
            self._assets[name] = (body, _CONTENT_TYPES[Path(name).suffix])
        return self._assets[name]

    def state(self, now: float | None = None) -> dict[str, Any]:
        """What the live page shows (``/api/state``): ``faces`` in view (track id, stable label, its
        probability, the probabilities of every label, box), the ``timeline`` of the last minutes, the
        pipeline's ``health`` (``/healthz``'s verdict, fps, per-stage latency, dropped frames and events,
        uptime, model, detector), each sink's counters and the ``preview``'s settings. No secrets: the
        source is redacted, sinks report counters only."""
        now = time.time() if now is None else now
        mono = time.monotonic()
        code, verdict = self.health(now)
        st, _ = self._status()
        with self._lock:
            self._page_seen = mono
            snap = self._faces
            room = self._room.tracks()
            segments = self._timeline.segments(now)
        if snap is not None and mono - snap[0] <= _PAGE_ACTIVE_S:
            faces = snap[1]
        else:  # the page just opened, or no frame lately: the faces as the last events described them
            faces = [_face_from_event(e) for e in room]
        health: dict[str, Any] = {"status": verdict.get("status"), "ok": code == 200}
        for key in _HEALTH_KEYS:
            if st is not None and key in st:
                health[key] = st[key]
        sinks: dict[str, Any] = {}
        for s in self._sinks or [self]:
            try:
                sinks[s.name] = s.stats().to_dict()
            except Exception as exc:  # noqa: BLE001
                log.debug("HTTP sink: stats() of %r failed: %s", s, exc)
        preview: dict[str, Any] = {"enabled": self.preview is not None}
        if self.preview is not None:
            ps = self.preview.stats()
            preview.update(
                url="/stream.mjpg", fps=self.preview.fps, max_viewers=self.preview.max_viewers, viewers=ps.viewers
            )
        return jsondoc.document(
            "live-state",
            {
                "ts": round(now, 3),
                "labels": list(self.labels),
                "faces": faces,
                "timeline": {"window_s": self._timeline.window_s, "segments": segments},
                "health": health,
                "sinks": sinks,
                "preview": preview,
            },
        )

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
        if st.get("source_connected") is False:  # the camera or stream is lost, being reopened: not healthy now
            body["status"] = "source-down"
            return 503, body
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


_STREAM_SNDBUF = 256 * 1024
_PAGE_ACTIVE_S = 5.0  # the page counts as open this long after its last poll
_HEALTH_KEYS = (
    "fps",
    "frames",
    "faces",
    "tracks",
    "dropped_frames",
    "bad_frames",
    "dropped_events",
    "queued_events",
    "errors",
    "low_quality_faces",
    "uptime_s",
    "last_frame_ts",
    "source",
    "model",
    "detector",
    "stages",
)


def _query_tokens(raw_query: str) -> list[str]:
    """The ``token`` values of a query string (the first few fields only: a hostile URL costs nothing)."""
    out = []
    for field in raw_query[:8192].split("&", 32)[:32]:
        key, _, value = field.partition("=")
        if key == "token":
            out.append(unquote_plus(value))
    return out


def _face_from_event(e: Mapping[str, Any]) -> dict[str, Any]:
    scores = e.get("scores") or {}
    label = e.get("label")
    return {
        "track_id": e.get("track_id"),
        "label": label,
        "confidence": scores.get(label) if label else None,
        "scores": scores,
        "box": e.get("box"),
        "since": None,
    }


def _json_bytes(obj: Any) -> bytes:
    return jsonutil.dumps(obj).encode()
