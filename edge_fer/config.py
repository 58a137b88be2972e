"""One configuration schema for ``edge-fer run``: a TOML file and CLI flags are two views of it.

::

    [source]   uri, width, height, fps, loop, wait, max_pixels
    [model]    path, device, threads
    [detector] name, model, every, full_every, scale, min_size, score_threshold, nms_threshold
    [tracker]  iou_threshold, max_missed, min_hits, ema_alpha, switch_margin, switch_frames
    [output]   path, format, overwrite, per_frame, annotate, save_crops
    [quality]  enabled, model, threshold
    [mqtt]     host, port, topic, client_id, username, password, qos, discovery, queue_size, ack_timeout
    [http]     host, port, allowed_hosts
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
from edge_fer.errors import ConfigError
from edge_fer.interpreter import DEVICES
from edge_fer.schema import opt

OUTPUT_FORMATS = ("jsonl", "csv")


@dataclass
class SourceConfig:
    uri: str = opt(
        "0",
        flag="--source",
        short="-s",
        help="Video file, image/folder/glob, camera index, rtsp://|http:// URL, or 'picamera2' "
        "(default: none; needed unless --config names one).",
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


@dataclass
class ModelConfig:
    path: str = opt(
        "",
        flag="--model",
        short="-m",
        help="Model bundle (.tflite from 'edge-fer convert') (default: the shipped model).",
    )
    device: str = opt("auto", choices=DEVICES, flag="--device", help="auto | cpu | edgetpu.")
    threads: int = opt(0, lo=0, hi=64, flag="--threads", help="Interpreter threads (0: the interpreter's default).")


@dataclass
class TrackerConfig:
    """The tracker's options (:mod:`edge_fer.track`), the [tracker] section."""

    iou_threshold: float = opt(0.3, lo=0.0, hi=1.0, open_lo=True, help="Least IoU of a face with a track's box.")
    max_missed: int = opt(15, lo=0, hi=100000, help="Frames without a detection before face_left.")
    min_hits: int = opt(2, lo=1, hi=1000, help="Detections before face_appeared.")
    ema_alpha: float = opt(0.4, lo=0.0, hi=1.0, open_lo=True, help="Weight of the newest probabilities.")
    switch_margin: float = opt(0.1, lo=0.0, hi=1.0, help="How much another label must lead to take over.")
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
        "'edge-fer convert --quality' makes it).",
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
    client_id: str = ""
    username: str = ""
    password: str = ""
    qos: int = opt(1, choices=(0, 1, 2))
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
            return float(value)
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
    return cfg


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
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{p}:{line}: not UTF-8 text (byte 0x{e.object[e.start]:02x}); TOML files must be UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from None
    cfg = from_dict(data, text, str(p))
    try:
        return validate(cfg)
    except ConfigError as e:
        m = re.search(r"'(\w+)\.(\w+)'", str(e))
        at = _line_of(text, m.group(1), m.group(2)) if m else None
        raise ConfigError(f"{p}:{at}: {e}" if at else f"{p}: {e}") from None


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Apply ``{"section.key": value}``; ``None`` values (flag not given) are skipped."""
    for k, v in overrides.items():
        if v is not None:
            cfg.set(k, v, "")
    return validate(cfg)


def build(config_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """The effective config: defaults <- file <- CLI flags."""
    cfg = load(config_file) if config_file else Config()
    return apply_overrides(cfg, overrides or {})


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
