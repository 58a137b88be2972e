"""One schema: TOML file and CLI overrides; errors name the key and the line."""

from __future__ import annotations

import pytest

from edge_fer import config as C
from edge_fer.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_defaults_validate():
    cfg = C.build()
    assert cfg.detector.name == "haar" and cfg.output.path == "-" and cfg.model.device == "auto"
    assert cfg.http.host == "127.0.0.1" and cfg.http.port == 0 and cfg.mqtt.host == ""


def test_file_then_flags_override(tmp_path):
    p = write(tmp_path, '[source]\nuri = 0\n\n[detector]\nname = "yunet"\nevery = 3\nscale = 1\n[output]\nper_frame = true\n')
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
        C.load(write(tmp_path, '\n[camera]\nx = 1\n'))


def test_wrong_type_names_key_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r":3: config key 'detector\.every' must be int"):
        C.load(write(tmp_path, '[detector]\nname = "haar"\nevery = "often"\n'))
    with pytest.raises(ConfigError, match="must be bool"):
        C.load(write(tmp_path, '[output]\nper_frame = 1\n'))


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
    cfg = C.build(None, {"source.uri": "video.mp4", "detector.every": 2, "mqtt.host": "broker", "output.per_frame": True})
    p = write(tmp_path, C.to_toml(cfg))
    assert C.load(p) == cfg


def test_cli_flags_map_to_schema_keys():
    from edge_fer._cli.run import FLAG_KEYS

    cfg = C.Config()
    for key in FLAG_KEYS.values():
        section, _, name = key.partition(".")
        assert hasattr(getattr(cfg, section), name), key
