"""One configuration schema for ``edge-fer run``: a TOML file and CLI flags are two views of it.

::

    [source]   uri, width, height, fps, loop, wait, max_pixels
    [model]    path, device, threads
    [detector] name, model, every, full_every, scale, min_size, score_threshold
    [tracker]  iou_threshold, max_missed, min_hits, ema_alpha, switch_margin, switch_frames
    [output]   path, format, overwrite, per_frame, annotate, save_crops
    [quality]  enabled, model, threshold
    [mqtt]     host, port, topic, client_id, username, password, qos, discovery, queue_size, ack_timeout
    [http]     host, port, allowed_hosts
    [run]      max_frames, status_interval_s

Unknown sections/keys and values of the wrong type are :class:`~edge_fer.errors.ConfigError`
naming the key and, for a file, its line. CLI flags (dotted keys such as ``detector.every``)
override the file.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from edge_fer.errors import ConfigError

INF = float("inf")


def _r(default: Any, lo: float, hi: float = INF, *, open_lo: bool = False) -> Any:
    """A config field with its allowed range [lo, hi] (``open_lo``: (lo, hi]); ``validate`` checks
    every ranged field, and refuses NaN and infinities, with the key and the range in the message."""
    return field(default=default, metadata={"range": (lo, hi, open_lo)})


@dataclass
class SourceConfig:
    uri: str = "0"  # path, folder, glob, camera index, URL, "picamera2"
    width: int = _r(0, 0, 16384)  # camera capture size (0: device default; picamera2 default 640x480)
    height: int = _r(0, 0, 16384)
    fps: float = _r(0.0, 0, 1000)
    loop: bool = False  # loop a video file (soak tests, demos)
    wait: bool = False  # a camera/stream that cannot be opened at start is retried with back-off (daemon)
    # images (and videos) declaring more pixels are refused from their header, before decoding; 0: no limit
    max_pixels: int = _r(50_000_000, 0)


@dataclass
class ModelConfig:
    path: str = ""  # empty: the default model shipped in the package
    device: str = "auto"  # auto | cpu | edgetpu
    threads: int = _r(0, 0, 64)  # 0: the interpreter's default


@dataclass
class DetectorConfig:
    name: str = "haar"  # haar | yunet
    model: str = ""  # YuNet .onnx (or a Haar cascade XML)
    every: int = _r(1, 1, 1000)  # detect every N frames; the tracker carries faces in between
    # a full-frame pass every N frames, and between them a search only in a window around each face
    # found by the previous detection (edge_fer.detect.roi); 0: every detection scans the whole frame
    full_every: int = _r(12, 0, 1000)
    scale: float = _r(0.5, 0.05, 1.0)  # detection runs on the frame downscaled by this factor
    min_size: int = _r(30, 0, 10000)  # smallest face side, full-frame pixels
    score_threshold: float = _r(0.6, 0.0, 1.0)  # YuNet


@dataclass
class TrackerSection:
    iou_threshold: float = _r(0.3, 0.0, 1.0, open_lo=True)
    max_missed: int = _r(15, 0, 100000)
    min_hits: int = _r(2, 1, 1000)
    ema_alpha: float = _r(0.4, 0.0, 1.0, open_lo=True)
    switch_margin: float = _r(0.1, 0.0, 1.0)
    switch_frames: int = _r(3, 1, 1000)


@dataclass
class OutputConfig:
    path: str = "-"  # "-" is stdout
    format: str = "jsonl"  # jsonl | csv
    overwrite: bool = False  # truncate the output file at start (default: append to it)
    per_frame: bool = False  # also one "face" event per face per frame
    annotate: str = ""  # write an annotated video here (privacy: off unless asked)
    save_crops: str = ""  # save face crops here (privacy: off unless asked)


@dataclass
class QualityConfig:
    # the crop-quality gate (edge_fer.quality): on when the bundle has an autoencoder next to it
    enabled: bool = True
    model: str = ""  # empty: <model>_ae.tflite next to the bundle ('edge-fer convert --quality'), if present
    threshold: float = _r(0.0, 0.0, 1.0)  # reconstruction MSE above which a crop is low quality; 0: the bundle's


@dataclass
class MqttConfig:
    host: str = ""  # empty: no MQTT
    port: int = _r(1883, 1, 65535)
    topic: str = "edge-fer"
    client_id: str = ""
    username: str = ""
    password: str = ""
    qos: int = 1
    discovery: bool = False  # Home Assistant discovery
    queue_size: int = _r(1000, 1, 10_000_000)  # events held while the broker is down or stalled; oldest dropped
    ack_timeout: float = _r(5.0, 0.0, 3600.0, open_lo=True)  # no acknowledgement for this long: broker stalled


@dataclass
class HttpConfig:
    port: int = _r(0, 0, 65535)  # 0: no HTTP endpoint
    host: str = "127.0.0.1"
    # Host header names accepted besides localhost, IP addresses and this machine's names (DNS-rebinding
    # guard); comma-separated, "*": any
    allowed_hosts: str = ""


@dataclass
class RunConfig:
    max_frames: int = _r(0, 0)  # 0: until the source ends or a signal
    status_interval_s: float = _r(10.0, 0.0, 86400.0, open_lo=True)  # systemd STATUS / log line period


@dataclass
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerSection = field(default_factory=TrackerSection)
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
        if key is not None and cur is None and re.match(rf'^"?{re.escape(section)}"?\s*\.\s*"?{re.escape(key)}"?\s*=', s):
            return i
    return None


def validate(cfg: Config) -> Config:
    """Value checks that types alone do not catch."""
    def need(ok: bool, key: str, msg: str) -> None:
        if not ok:
            raise ConfigError(f"config key '{key}' {msg}")

    from edge_fer.detect import DETECTORS
    from edge_fer.interpreter import DEVICES

    need(cfg.model.device in DEVICES, "model.device", f"must be one of {', '.join(DEVICES)}, got {cfg.model.device!r}")
    need(cfg.detector.name in DETECTORS, "detector.name", f"must be one of {', '.join(DETECTORS)}, got {cfg.detector.name!r}")
    need(cfg.output.format in ("jsonl", "csv"), "output.format", f"must be jsonl or csv, got {cfg.output.format!r}")
    need(cfg.mqtt.qos in (0, 1, 2), "mqtt.qos", "must be 0, 1 or 2")
    for sec_field in fields(cfg):
        sec = getattr(cfg, sec_field.name)
        for f in fields(sec):
            value = getattr(sec, f.name)
            key = f"{sec_field.name}.{f.name}"
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}")
            rng = f.metadata.get("range")
            if rng is None:
                continue
            lo, hi, open_lo = rng
            ok = (lo < value if open_lo else lo <= value) and value <= hi
            if not ok:
                span = f"{'(' if open_lo else '['}{lo:g}, {hi:g}]" if hi != INF else f"{'>' if open_lo else '>='} {lo:g}"
                raise ConfigError(f"config key '{key}' must be {'in ' if hi != INF else ''}{span}, got {value!r}")
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
        raise ConfigError(f"{p}:{line}: not UTF-8 text (byte 0x{e.object[e.start]:02x}); TOML files must be UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from None
    cfg = from_dict(data, text, str(p))
    try:
        return validate(cfg)
    except ConfigError as e:
        m = re.search(r"'(\w+)\.(\w+)'", str(e))
        line = _line_of(text, m.group(1), m.group(2)) if m else None
        raise ConfigError(f"{p}:{line}: {e}" if line else f"{p}: {e}") from None


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
