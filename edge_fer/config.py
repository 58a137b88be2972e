"""One configuration schema for ``edge-fer run``: a TOML file and CLI flags are two views of it.

::

    [source]   uri, width, height, fps, loop, wait, max_pixels, stall_timeout
    [model]    path, device, threads
    [detector] name, model, every, full_every, scale, min_size, score_threshold, nms_threshold
    [tracker]  iou_threshold, max_missed, min_hits, ema_alpha, switch_margin, switch_frames
    [output]   path, format, overwrite, per_frame, annotate, save_crops
    [quality]  enabled, model, threshold
    [mqtt]     host, port, topic, client_id, username, password, qos, discovery, queue_size, ack_timeout
    [http]     host, port, allowed_hosts, token, public_metrics, preview, preview_fps, preview_max_viewers,
               preview_width
    [run]      max_frames, status_interval_s

Each section is a dataclass whose fields carry their range, choices, CLI flag and help
(:func:`edge_fer.schema.opt`): the defaults, the flags of ``edge-fer run`` (and the pipeline flags
``edge-fer bench`` shares), their help, the TOML file, ``--print-config`` and :func:`validate` all
derive from it. Unknown sections/keys and values of the wrong type or out of range are
:class:`~edge_fer.errors.ConfigError` naming the key and, for a file, its line. CLI flags (dotted
keys such as ``detector.every``) override the file.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast, get_type_hints

from edge_fer import schema
from edge_fer.detect.options import DetectorConfig
from edge_fer.errors import ConfigError, EdgeFerError
from edge_fer.interpreter import DEVICES
from edge_fer.schema import opt

# the detector flags every pipeline command (run, bench, analyze) shares, as dotted config keys
DETECTOR_KEYS = (
    "detector.name",
    "detector.model",
    "detector.every",
    "detector.full_every",
    "detector.scale",
    "detector.min_size",
)
OUTPUT_FORMATS = ("jsonl", "csv")
MIN_TOKEN_LEN = 16


@dataclass
class SourceConfig:
    uri: str = opt(
        "",
        flag="--source",
        short="-s",
        help="Video file, image/folder/glob, camera index, rtsp://|http:// URL, or 'picamera2' "
        "(default: none; needed unless the --config file's [source] names one).",
    )
    width: int = opt(
        0, lo=0, hi=16384, flag="--width", help="Camera capture width (0: the device's default; picamera2: 640)."
    )
    height: int = opt(
        0, lo=0, hi=16384, flag="--height", help="Camera capture height (0: the device's default; picamera2: 480)."
    )
    fps: float = opt(0.0, lo=0, hi=1000, help="Requested camera frame rate (0: the device's default).")
    loop: bool = opt(False, flag="--loop/--no-loop", help="Loop a video file (soak tests, demos).")
    wait: bool = opt(
        False,
        flag="--wait-for-source/--no-wait-for-source",
        help="Keep retrying (with back-off) a camera or stream that cannot be opened yet, instead of exiting (daemon).",
    )
    max_pixels: int = opt(
        50_000_000,
        lo=0,
        help="Images (and videos) declaring more pixels are refused from their header, before decoding (0: no limit).",
    )
    stall_timeout: float = opt(
        10.0,
        lo=0,
        hi=3600,
        flag="--stall-timeout",
        help="A camera or stream whose capture call has not returned for this many seconds (a wedged driver, "
        "a stalled stream) is abandoned and reopened (0: never).",
    )


@dataclass
class ModelConfig:
    path: str = opt(
        "",
        flag="--model",
        short="-m",
        help="Model bundle (.tflite from 'edge-fer convert') (default: the shipped model).",
    )
    device: str = opt("auto", choices=DEVICES, flag="--device", help="auto | cpu | edgetpu.")
    threads: int = opt(
        0, lo=0, hi=64, flag="--threads", help="Interpreter threads (0: one per usable core, at most 4)."
    )


@dataclass
class TrackerConfig:
    """The tracker's options (:mod:`edge_fer.track`), the [tracker] section."""

    iou_threshold: float = opt(0.3, lo=0.0, hi=1.0, open_lo=True, help="Least IoU of a face with a track's box.")
    max_missed: int = opt(15, lo=0, hi=100000, help="Frames without a detection before face_left.")
    min_hits: int = opt(2, lo=1, hi=1000, help="Detections before face_appeared.")
    ema_alpha: float = opt(0.4, lo=0.0, hi=1.0, open_lo=True, help="Weight of the newest probabilities.")
    # 0.25 on calibrated scores keeps the label switches per track of 0.1 on the uncalibrated ones
    # (benchmarks/calibration_tracker.py on the shared clip: 7 switches on 3 tracks either way)
    switch_margin: float = opt(0.25, lo=0.0, hi=1.0, help="How much another label must lead to take over.")
    switch_frames: int = opt(3, lo=1, hi=1000, help="... for this many updates in a row.")


@dataclass
class OutputConfig:
    path: str = opt("-", flag="--output", short="-o", help="Events file, or '-' for stdout.")
    format: str = opt("jsonl", choices=OUTPUT_FORMATS, flag="--format", help="Output format: jsonl or csv.")
    overwrite: bool = opt(
        False,
        flag="--overwrite/--append",
        help="Truncate the events file at start instead of appending to it (default: append; "
        "a restart never erases earlier events).",
    )
    per_frame: bool = opt(
        False, flag="--per-frame/--no-per-frame", help="Also emit one 'face' event per face per frame."
    )
    annotate: str = opt("", flag="--annotate", help="Write an annotated video here (default: off, for privacy).")
    save_crops: str = opt("", flag="--save-crops", help="Save face crops to this folder (default: off, for privacy).")


@dataclass
class QualityConfig:
    """The crop-quality gate (:mod:`edge_fer.quality`): on when the bundle has an autoencoder next to it."""

    enabled: bool = opt(
        True,
        flag="--quality/--no-quality",
        help="Crop-quality gate: use <model>_ae.tflite when it is next to the model (default on; "
        "'edge-fer convert --write-quality-gate' makes it).",
    )
    model: str = opt("", flag="--quality-model", help="The gate's autoencoder bundle, if not <model>_ae.tflite.")
    threshold: float = opt(
        0.0,
        lo=0.0,
        hi=1.0,
        flag="--quality-threshold",
        help="Reconstruction MSE above which a crop is low quality (default: the bundle's calibrated one).",
    )


@dataclass
class MqttConfig:
    host: str = opt("", flag="--mqtt-host", help="Publish events to this MQTT broker (needs edge-fer[mqtt]).")
    port: int = opt(1883, lo=1, hi=65535, flag="--mqtt-port", help="MQTT broker port.")
    topic: str = opt("edge-fer", flag="--mqtt-topic", help="MQTT topic prefix.")
    client_id: str = opt("", help="MQTT client id (empty: edge-fer-<hostname>-<random>).")
    username: str = opt("", help="Broker user name (empty: none).")
    password: str = opt("", help="Broker password; never logged or printed (--print-config shows ***).")
    qos: int = opt(1, choices=(0, 1, 2), help="QoS of <topic>/events (availability is 1, state and stats 0).")
    discovery: bool = opt(False, help="Home Assistant discovery.")
    queue_size: int = opt(
        1000, lo=1, hi=10_000_000, help="Events held while the broker is down or stalled; the oldest are dropped."
    )
    ack_timeout: float = opt(
        5.0, lo=0.0, hi=3600.0, open_lo=True, help="No acknowledgement for this long (s): the broker counts as stalled."
    )


@dataclass
class HttpConfig:
    port: int = opt(
        0, lo=0, hi=65535, flag="--http-port", help="Serve /healthz /metrics /latest on this port (0: off)."
    )
    host: str = opt("127.0.0.1", flag="--http-host", help="HTTP bind address.")
    allowed_hosts: str = opt(
        "",
        help="Host header names accepted besides localhost, IP addresses and this machine's "
        "names (DNS-rebinding guard); comma-separated, '*': any.",
    )
    token: str = opt(
        "",
        help=f"Access token for the page, the preview and the JSON/metrics endpoints (at least {MIN_TOKEN_LEN} "
        "characters); required when http.host is not a loopback address. Sent as ?token= (the page then keeps "
        "it in a cookie) or 'Authorization: Bearer <token>'.",
    )
    public_metrics: bool = opt(
        False,
        help="/metrics and /healthz answer without the token (a Prometheus scraper or health probe that cannot "
        "send a bearer token); the page, /latest and the preview still need it.",
    )
    preview: bool = opt(
        False,
        flag="--http-preview/--no-http-preview",
        help="Serve an annotated live preview at /stream.mjpg and show it on the page (off by default: it shows "
        "faces).",
    )
    preview_fps: float = opt(
        5.0, lo=0.0, hi=30.0, open_lo=True, help="Most preview frames encoded per second, while someone watches."
    )
    preview_max_viewers: int = opt(3, lo=1, hi=64, help="Preview viewers served at once; more get 503.")
    preview_width: int = opt(
        640, lo=0, hi=4096, help="Preview frames wider than this are scaled down before encoding (0: full size)."
    )


@dataclass
class RunConfig:
    max_frames: int = opt(0, lo=0, flag="--max-frames", help="Stop after N frames (0: no limit).")
    status_interval_s: float = opt(
        10.0, lo=0.0, hi=86400.0, open_lo=True, help="Period of the systemd STATUS and log line (s)."
    )


@dataclass
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def set(self, dotted: str, value: Any, where: str = "") -> None:
        """Set ``section.key`` with type checking (the CLI and the file use this)."""
        section, _, key = dotted.partition(".")
        sec = getattr(self, section, None) if section in _SECTIONS else None
        if sec is None:
            raise ConfigError(f"{where}unknown config section [{section}] (known: {', '.join(_SECTIONS)})")
        hints = _hints(type(sec))
        if key not in hints:
            raise ConfigError(f"{where}unknown config key '{dotted}' (known in [{section}]: {', '.join(hints)})")
        setattr(sec, key, _coerce(dotted, hints[key], value, where))


# (key prefix, section class) of every section: the flags of `edge-fer run` (schema.command); each
# field of Config is a section, its default_factory the section's class
SCHEMAS: tuple[tuple[str, type], ...] = tuple((f"{f.name}.", cast(type, f.default_factory)) for f in fields(Config))
_SECTIONS = tuple(f.name for f in fields(Config))
_HINTS: dict[type, dict[str, type]] = {}


def _hints(cls: type) -> dict[str, type]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _coerce(key: str, typ: type, value: Any, where: str) -> Any:
    from edge_fer.redact import is_secret_key

    shown = f"a {type(value).__name__}" if is_secret_key(key) else repr(value)  # never echo a password
    bad = ConfigError(f"{where}config key '{key}' must be {typ.__name__}, got {shown}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an integer beyond float range
                raise ConfigError(
                    f"{where}config key '{key}' is out of range, got a {len(str(value))}-digit integer"
                ) from None
        raise bad
    if typ is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):  # source = 0
            return str(value)
        raise bad
    return value


def _line_of(text: str, section: str, key: str | None) -> int | None:
    """1-based line of ``[section]`` / ``key =`` in the TOML text (best effort)."""
    cur = None
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        m = re.match(r"^\[\s*([^\]]+?)\s*\]", s)
        if m:
            cur = m.group(1).strip().strip('"')
            if key is None and cur == section:
                return i
            continue
        if key is not None and cur == section and re.match(rf'^"?{re.escape(key)}"?\s*=', s):
            return i
        if (
            key is not None
            and cur is None
            and re.match(rf'^"?{re.escape(section)}"?\s*\.\s*"?{re.escape(key)}"?\s*=', s)
        ):
            return i
    return None


def validate(cfg: Config) -> Config:
    """Every value against its field's range and choices (:func:`edge_fer.schema.check`); errors name
    the key (``config key 'detector.scale' must be in [0.05, 1], got 2.0``)."""
    for prefix, _ in SCHEMAS:
        schema.check(getattr(cfg, prefix[:-1]), prefix)
    check_http(cfg.http)
    _check_mqtt(cfg.mqtt)
    return cfg


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine (``127.0.0.0/8``, ``::1``,
    ``localhost``)."""
    import ipaddress

    h = host.strip().strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_http(http: HttpConfig) -> None:
    """The HTTP sink's security rule: a server reachable from other machines needs a token (no page, no
    preview, no events for anyone on the network), and a token must be long enough to resist guessing."""
    if http.token and len(http.token) < MIN_TOKEN_LEN:
        raise ConfigError(
            f"config key 'http.token' must be at least {MIN_TOKEN_LEN} characters, got {len(http.token)} "
            "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    if http.token and not re.fullmatch(r"[A-Za-z0-9_.~-]+", http.token):
        raise ConfigError(
            "config key 'http.token' may hold only letters, digits and _ . ~ - (it travels in URLs and cookies)"
        )
    if http.preview and not http.port:
        raise ConfigError("http.preview needs the HTTP server: set http.port (--http-port)")
    if http.port and not http.token and not is_loopback(http.host):
        raise ConfigError(
            f"http.host {http.host!r} is reachable from other machines: set http.token (at least "
            f"{MIN_TOKEN_LEN} characters) in the config file, or bind 127.0.0.1 and use an SSH tunnel"
        )


#: MQTT strings are length-prefixed with 16 bits; the topic prefix leaves room for "/events" etc.
_MQTT_MAX_BYTES = 65_535


def _check_mqtt(m: MqttConfig) -> None:
    """Values paho accepts but then dies on in its network thread (nothing delivered, exit 0 before):
    a host name that is no DNS name, strings beyond MQTT's 65,535-byte limit, wildcards in a topic."""
    import ipaddress

    host = m.host.strip()
    if host:
        try:
            ipaddress.ip_address(host.strip("[]"))
            host = host.strip("[]")  # "[::1]" as in a URL: paho wants the bare address
        except ValueError:
            labels = host.rstrip(".").split(".")
            if len(host) > 253 or any(not 1 <= len(lb) <= 63 for lb in labels):
                raise ConfigError(
                    f"config key 'mqtt.host' is not a valid host name (at most 253 characters, each dot-separated "
                    f"label 1-63): got {len(host)} characters, longest label {max(map(len, labels))}"
                ) from None
            if any(c.isspace() or c in "/:@?#" for c in host):
                raise ConfigError(
                    f"config key 'mqtt.host' must be a host name or an IP address, got {host[:80]!r}"
                ) from None
        m.host = host  # checked as trimmed, used as checked (" 127.0.0.1" never connected)
    for key, value, room in (
        ("topic", m.topic, 64),
        ("client_id", m.client_id, 0),
        ("username", m.username, 0),
        ("password", m.password, 0),
    ):
        n = len(value.encode("utf-8"))
        if n > _MQTT_MAX_BYTES - room:
            raise ConfigError(
                f"config key 'mqtt.{key}' is {n:,} bytes; MQTT allows at most {_MQTT_MAX_BYTES - room:,} here"
            )
    if any(c in m.topic for c in "+#\0"):
        raise ConfigError(f"config key 'mqtt.topic' must not hold the wildcards '+', '#' or a NUL: {m.topic[:80]!r}")


def from_dict(data: dict[str, Any], text: str | None = None, source: str = "config") -> Config:
    cfg = Config()
    for section, body in data.items():
        line = _line_of(text, section, None) if text else None
        where = f"{source}:{line}: " if line else f"{source}: "
        if section not in _SECTIONS:
            raise ConfigError(f"{where}unknown config section [{section}] (known: {', '.join(_SECTIONS)})")
        if not isinstance(body, dict):
            raise ConfigError(f"{where}[{section}] must be a table")
        for key, value in body.items():
            line = _line_of(text, section, key) if text else None
            where = f"{source}:{line}: " if line else f"{source}: "
            cfg.set(f"{section}.{key}", value, where)
    return cfg


def load(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    from edge_fer.fsutil import MAX_CONFIG_BYTES, read_input_bytes

    p = Path(path)
    try:  # a FIFO, a device or a huge file is refused from os.stat, before anything is read
        raw = read_input_bytes(p, "config", MAX_CONFIG_BYTES)
    except EdgeFerError as e:
        raise ConfigError(str(e)) from None
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{p}:{line}: not UTF-8 text (byte 0x{e.object[e.start]:02x}); TOML files must be UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{p}: invalid TOML: arrays or tables nested too deeply") from None
    cfg = from_dict(data, text, str(p))
    try:
        return validate(cfg)
    except ConfigError as e:
        m = re.search(r"'(\w+)\.(\w+)'", str(e))
        at = _line_of(text, m.group(1), m.group(2)) if m else None
        raise ConfigError(f"{p}:{at}: {e}" if at else f"{p}: {e}") from None


def _spec(dotted: str) -> schema.Spec | None:
    section, _, key = dotted.partition(".")
    for f in fields(Config):
        if f.name == section:
            for g in fields(cast(type, f.default_factory)):
                if g.name == key:
                    return schema.spec_of(g)
    return None


def apply_overrides(cfg: Config, overrides: dict[str, Any], *, as_flags: bool = False) -> Config:
    """Apply ``{"section.key": value}``; ``None`` values (flag not given) are skipped. ``as_flags``:
    the values came from CLI flags, and an error names the flag (``--detect-scale``), not the key."""
    for k, v in overrides.items():
        if v is not None:
            cfg.set(k, v, "")
            spec = _spec(k) if as_flags else None
            if spec is not None and spec.flag:
                schema.check_value(
                    spec.flag.split("/")[0], getattr(getattr(cfg, k.split(".")[0]), k.split(".")[1]), spec
                )
    return validate(cfg)


def build(
    config_file: str | Path | None = None, overrides: dict[str, Any] | None = None, *, as_flags: bool = False
) -> Config:
    """The effective config: defaults <- file <- CLI flags (``as_flags``: errors in them name the flag)."""
    cfg = load(config_file) if config_file else Config()
    return apply_overrides(cfg, overrides or {}, as_flags=as_flags)


NO_SOURCE = (
    "no source: give --source (a video file, images, a camera index such as 0, a URL or 'picamera2') "
    "or set uri in the [source] section of the --config file"
)


def require_source(cfg: Config) -> Config:
    """The one check that a source was named, by a flag or the file: nothing opens camera 0 unasked."""
    if not cfg.source.uri.strip():
        raise ConfigError(NO_SOURCE)
    return cfg


def to_toml(cfg: Config, *, redact: bool = False) -> str:
    """The config as TOML text (for ``--print-config`` and the example file). ``redact``: secrets
    (``mqtt.password``, the password in a camera URL) are printed as ``***`` (:mod:`edge_fer.redact`)."""
    from edge_fer.redact import redact_config

    out = []
    data = cfg.to_dict()
    for sec, body in (redact_config(data) if redact else data).items():
        out.append(f"[{sec}]")
        for k, v in body.items():
            if isinstance(v, bool):
                s = "true" if v else "false"
            elif isinstance(v, (int, float)):
                s = repr(v)
            else:
                s = '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
            out.append(f"{k} = {s}")
        out.append("")
    return "\n".join(out)
