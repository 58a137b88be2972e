"""One schema: TOML file and CLI overrides; errors name the key and the line."""

from __future__ import annotations

import re

import pytest

from edge_fer import config as C
from edge_fer.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_defaults_keep_everything_private_and_local():
    """Out of the box nothing but events is written and nothing listens beyond this machine."""
    cfg = C.build()
    assert cfg.output.annotate == "" and cfg.output.save_crops == "" and not cfg.output.overwrite
    assert cfg.http.port == 0 and cfg.http.host == "127.0.0.1" and cfg.mqtt.host == ""


def test_every_schema_default_passes_its_own_range():
    from dataclasses import fields

    from edge_fer import schema

    for prefix, cls in C.SCHEMAS:
        for f in fields(cls):
            schema.check_value(f"{prefix}{f.name}", schema.field_default(f), schema.spec_of(f))


@pytest.mark.parametrize(
    "key,value,msg",
    [
        ("detector.scale", 2.0, r"config key 'detector\.scale' must be in \[0\.05, 1\], got 2\.0"),
        ("mqtt.port", 0, r"'mqtt\.port' must be in \[1, 65535\]"),
        ("mqtt.qos", 3, r"'mqtt\.qos' must be one of 0, 1, 2"),
        ("output.format", "xml", r"'output\.format' must be one of jsonl, csv"),
        ("detector.name", "mtcnn", r"'detector\.name' must be one of yunet, haar, auto"),
        ("tracker.ema_alpha", 0.0, r"'tracker\.ema_alpha' must be in \(0, 1\]"),
        ("run.status_interval_s", float("nan"), r"'run\.status_interval_s' must be a finite number"),
    ],
)
def test_ranges_and_choices_come_from_the_schema(key, value, msg):
    with pytest.raises(ConfigError, match=msg):
        C.build(None, {key: value})


def test_file_then_flags_override(tmp_path):
    p = write(
        tmp_path, '[source]\nuri = 0\n\n[detector]\nname = "yunet"\nevery = 3\nscale = 1\n[output]\nper_frame = true\n'
    )
    cfg = C.build(p, {"detector.every": 5, "detector.name": None, "output.path": "out.jsonl"})
    assert cfg.source.uri == "0" and cfg.detector.name == "yunet"
    assert cfg.detector.every == 5 and cfg.detector.scale == 1.0 and cfg.output.per_frame
    assert cfg.output.path == "out.jsonl"


def test_unknown_key_names_key_and_line(tmp_path):
    p = write(tmp_path, '[source]\nuri = "a.mp4"\n\n[detector]\nname = "haar"\nevry = 2\n')
    with pytest.raises(ConfigError, match=r"c\.toml:6: unknown config key 'detector\.evry'"):
        C.load(p)


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match=r":2: unknown config section \[camera\]"):
        C.load(write(tmp_path, "\n[camera]\nx = 1\n"))


def test_wrong_type_names_key_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r":3: config key 'detector\.every' must be int"):
        C.load(write(tmp_path, '[detector]\nname = "haar"\nevery = "often"\n'))
    with pytest.raises(ConfigError, match="must be bool"):
        C.load(write(tmp_path, "[output]\nper_frame = 1\n"))


def test_invalid_value_names_key_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r":2: config key 'model\.device' must be one of"):
        C.load(write(tmp_path, '[model]\ndevice = "gpu"\n'))
    with pytest.raises(ConfigError, match="detector.every"):
        C.build(None, {"detector.every": 0})


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid TOML"):
        C.load(write(tmp_path, "[source\n"))
    with pytest.raises(ConfigError, match="cannot read config"):
        C.load(tmp_path / "none.toml")


def test_to_toml_round_trips(tmp_path):
    cfg = C.build(
        None, {"source.uri": "video.mp4", "detector.every": 2, "mqtt.host": "broker", "output.per_frame": True}
    )
    p = write(tmp_path, C.to_toml(cfg))
    assert C.load(p) == cfg


def _params(command: str) -> list:
    import typer.main

    from edge_fer.cli import app

    return typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]


def _options(command: str) -> set[str]:
    return {o for p in _params(command) for o in (*p.opts, *p.secondary_opts)}


RUN_FLAGS = {
    "--source",
    "-s",
    "--model",
    "-m",
    "--output",
    "-o",
    "--config",
    "-c",
    "--format",
    "--overwrite",
    "--append",
    "--detector",
    "--detector-model",
    "--detect-every",
    "--full-every",
    "--detect-scale",
    "--min-face",
    "--device",
    "--threads",
    "--max-frames",
    "--per-frame",
    "--no-per-frame",
    "--loop",
    "--no-loop",
    "--wait-for-source",
    "--no-wait-for-source",
    "--stall-timeout",
    "--width",
    "--height",
    "--annotate",
    "--save-crops",
    "--quality",
    "--no-quality",
    "--quality-model",
    "--quality-threshold",
    "--mqtt-host",
    "--mqtt-port",
    "--mqtt-topic",
    "--http-port",
    "--http-host",
    "--http-preview",
    "--no-http-preview",
    "--print-config",
}
BENCH_PIPELINE_FLAGS = {
    "--detector",
    "--detector-model",
    "--detect-every",
    "--full-every",
    "--detect-scale",
    "--min-face",
    "--device",
    "--width",
    "--height",
}


def test_cli_flags_are_the_schema_s_and_keep_their_spelling():
    assert _options("run") == RUN_FLAGS
    bench = _options("bench")
    assert BENCH_PIPELINE_FLAGS <= bench
    assert (
        not (bench & RUN_FLAGS)
        - BENCH_PIPELINE_FLAGS
        - {"--source", "-s", "--model", "-m", "--config", "-c", "--threads", "--max-frames"}
    )


def test_flags_land_on_their_config_keys(capsys):
    import tomllib

    from edge_fer.cli import main

    code = main(
        [
            "run",
            "-s",
            "cam.mp4",
            "--detect-every",
            "3",
            "--min-face",
            "40",
            "--no-quality",
            "--append",
            "--wait-for-source",
            "--detect-scale",
            "0.25",
            "--print-config",
        ]
    )
    data = tomllib.loads(capsys.readouterr().out)
    assert code == 0 and data["source"]["uri"] == "cam.mp4" and data["source"]["wait"] is True
    assert data["detector"]["every"] == 3 and data["detector"]["min_size"] == 40 and data["detector"]["scale"] == 0.25
    assert data["quality"]["enabled"] is False and data["output"]["overwrite"] is False
    assert C.from_dict(data) == C.build(
        None,
        {
            "source.uri": "cam.mp4",
            "detector.every": 3,
            "detector.min_size": 40,
            "quality.enabled": False,
            "source.wait": True,
            "detector.scale": 0.25,
        },
    )


def test_help_shows_the_schema_defaults():
    helps = {p.opts[0]: p.help for p in _params("run")} | {"bench " + p.opts[0]: p.help for p in _params("bench")}
    assert helps["--detector"].endswith("(default: yunet)")
    assert helps["--full-every"].endswith("(default: 8)") and helps["--detect-scale"].endswith("(default: 0.5)")
    assert helps["bench --detect-scale"] == helps["--detect-scale"]  # one definition for both commands


@pytest.mark.parametrize(
    "http, msg",
    [
        ({"port": 8080, "host": "0.0.0.0"}, "http.host '0.0.0.0' is reachable from other machines: set http.token"),
        ({"port": 8080, "host": "192.168.1.20"}, "set http.token"),
        ({"port": 8080, "host": "::"}, "set http.token"),
        ({"port": 8080, "token": "short"}, "'http.token' must be at least 16 characters, got 5"),
        ({"port": 8080, "token": "has space in it 0123456"}, "may hold only letters, digits"),
        ({"preview": True}, "http.preview needs the HTTP server: set http.port (--http-port)"),
    ],
)
def test_http_security_rules(http, msg):
    cfg = C.Config()
    for k, v in http.items():
        cfg.set(f"http.{k}", v)
    with pytest.raises(ConfigError, match=re.escape(msg)):
        C.validate(cfg)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "::1", "localhost"])
def test_loopback_needs_no_token_and_any_bind_takes_one(host):
    cfg = C.Config()
    cfg.set("http.port", 8080)
    cfg.set("http.host", host)
    C.validate(cfg)
    cfg.set("http.host", "0.0.0.0")
    cfg.set("http.token", "A-good_token.0123456789~")
    C.validate(cfg)
    assert "A-good_token" not in C.to_toml(cfg, redact=True)
