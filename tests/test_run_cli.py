"""`edge-fer run`: the binding interface, errors as one line and exit code 2."""

from __future__ import annotations

import json
import sys

import pytest

from edge_fer.cli import main


def run(capsys, *args):
    code = main(["run", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_video_to_stdout(capsys, hamilton_clip, tiny_bundle):
    code, out, err = run(capsys, "--source", str(hamilton_clip), "--model", str(tiny_bundle), "--max-frames", "150")
    assert code == 0
    events = [json.loads(x) for x in out.splitlines()]
    assert events and all({"type", "ts"} <= set(e) for e in events)
    face = [e for e in events if e["type"] in ("face_appeared", "expression_changed", "face_left")]
    assert face and all({"track_id", "label", "scores"} <= set(e) for e in face)


def test_output_file_and_config_file(tmp_path, capsys, hamilton_clip, tiny_bundle):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[source]\nuri = "{hamilton_clip}"\n[model]\npath = "{tiny_bundle}"\n[run]\nmax_frames = 5\n'
        "[output]\nper_frame = true\n"
    )
    out = tmp_path / "o.jsonl"
    code, stdout, _ = run(capsys, "--config", str(cfg), "--output", str(out), "--max-frames", "200")
    assert code == 0 and stdout == ""
    events = [json.loads(x) for x in out.read_text().splitlines()]
    assert max(e.get("frame", 0) for e in events) >= 100  # the flag (200) beat the file (5)
    assert any(e["type"] == "face" for e in events)  # the file's per_frame applied


@pytest.mark.parametrize(
    "content,msg",
    [
        (b"this is not a model" * 20, "not a TFLite model"),
        (b"", "not a TFLite model"),
    ],
)
def test_non_bundle_model_refused_exit_2(tmp_path, capsys, hamilton_clip, content, msg):
    m = tmp_path / "bad.tflite"
    m.write_bytes(content)
    code, out, err = run(capsys, "--source", str(hamilton_clip), "--model", str(m))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[-1].startswith("edge-fer: error:") and msg in lines[-1] and str(m) in lines[-1]
    assert "Traceback" not in err


def test_corrupt_tflite_refused(tmp_path, capsys, hamilton_clip, tiny_bundle):
    data = bytearray(tiny_bundle.read_bytes())
    m = tmp_path / "corrupt.tflite"
    m.write_bytes(bytes(data[: len(data) // 3]))
    code, _, err = run(capsys, "--source", str(hamilton_clip), "--model", str(m))
    assert code == 2 and "edge-fer: error:" in err and "Traceback" not in err


def test_user_errors_exit_2(tmp_path, capsys, tiny_bundle):
    code, _, err = run(capsys, "--source", str(tmp_path / "nope.mp4"), "--model", str(tiny_bundle))
    assert code == 2 and "nope.mp4" in err
    code, _, err = run(capsys, "--source", "x.mp4", "--device", "gpu")
    assert code == 2 and "--device must be one of" in err  # a flag is named as typed
    cfg = tmp_path / "c.toml"
    cfg.write_text("[detector]\nevry = 2\n")
    code, _, err = run(capsys, "--config", str(cfg))
    assert code == 2 and "c.toml:2" in err and "detector.evry" in err
    code, _, err = run(capsys, "--model", str(tiny_bundle))
    assert code == 2 and "--source" in err


def test_missing_default_model_is_clear(capsys, hamilton_clip, monkeypatch):
    import edge_fer.classify as c

    monkeypatch.setattr(c, "DEFAULT_MODEL_NAME", "not_shipped.tflite")
    code, _, err = run(capsys, "--source", str(hamilton_clip))
    assert code == 2 and "default model" in err


def test_print_config(capsys):
    code, out, _ = run(capsys, "--source", "0", "--detect-every", "3", "--print-config")
    assert code == 0 and 'uri = "0"' in out and "every = 3" in out


def test_mqtt_without_paho_is_missing_extra(capsys, hamilton_clip, tiny_bundle, monkeypatch):
    import edge_fer.sinks.mqtt  # noqa: F401 (the sink module is there; only paho is missing)

    for name in [m for m in sys.modules if m == "paho" or m.startswith("paho.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "paho", None)
    monkeypatch.setitem(sys.modules, "paho.mqtt", None)
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    code, _, err = run(capsys, "--source", str(hamilton_clip), "--model", str(tiny_bundle), "--mqtt-host", "localhost")
    assert code == 2 and "mqtt" in err and "pip install" in err


def test_yunet_detector_flag(capsys, hamilton_clip, tiny_bundle, yunet_model):
    code, out, _ = run(
        capsys,
        "--source",
        str(hamilton_clip),
        "--model",
        str(tiny_bundle),
        "--detector",
        "yunet",
        "--detector-model",
        str(yunet_model),
        "--max-frames",
        "100",
        "--detect-every",
        "2",
    )
    assert code == 0 and any(json.loads(x)["type"] == "face_appeared" for x in out.splitlines())
