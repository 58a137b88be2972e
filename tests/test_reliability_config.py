"""Refuse at load, not after READY; secrets hidden even in malformed URLs. Through the installed
``edge-fer`` in a subprocess: every case is one ``edge-fer: error:`` line and exit 2, before any frame."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from tests.cli import EDGE_FER
from tests.conftest import shared_file
from tests.test_reliability_io import assert_one_clean_error


def cli(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([EDGE_FER, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "toml, words",
    [
        ("[tracker]\niou_threshold = 1" + "0" * 400 + "\n", ["tracker.iou_threshold", "out of range"]),
        ("x = " + "[" * 3000 + "]" * 3000 + "\n", ["nested too deeply"]),
        ("[mqtt]\nhost = '" + "a" * 64 + ".example'\n", ["mqtt.host", "label"]),
        ("[mqtt]\ntopic = '" + "t" * 70_000 + "'\n", ["mqtt.topic", "bytes"]),
        ("[mqtt]\nhost = 'localhost'\nclient_id = '" + "c" * 70_000 + "'\n", ["mqtt.client_id", "bytes"]),
        ("[mqtt]\nhost = 'localhost'\ntopic = 'cam/#'\n", ["mqtt.topic", "wildcards"]),
    ],
    ids=["int-beyond-float", "deep-nesting", "dns-label-64", "topic-70k", "client-id-70k", "topic-wildcard"],
)
def test_config_values_that_crashed_the_parser_or_paho_are_one_line(tmp_path, toml, words):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    proc = cli("run", "--config", cfg, "--source", shared_file("images/obama.jpg"), cwd=tmp_path)
    assert_one_clean_error(proc, 2, *words)


def _bundle(path, meta_changes=None, preprocessing_changes=None, output_shape=None):
    import tensorflow as tf
    from edge_fer.convert.metadata import embed_metadata

    from edge_fer.bundle import ModelMeta, Preprocessing

    inp = tf.keras.Input((48, 48, 1))
    x = tf.keras.layers.GlobalAveragePooling2D()(inp)
    x = tf.keras.layers.Dense(7, activation="softmax")(x)
    if output_shape is not None:
        x = tf.keras.layers.Reshape(output_shape)(x)
    raw = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, x)).convert()
    pre = dataclasses.replace(Preprocessing(), **(preprocessing_changes or {}))
    meta = dataclasses.replace(ModelMeta(preprocessing=pre), **(meta_changes or {}))
    path.write_bytes(embed_metadata(raw, meta))
    return path


@pytest.mark.slow
@pytest.mark.train  # builds its bundles with TensorFlow
def test_bundles_that_crashed_at_the_first_face_are_refused_at_load(tmp_path):
    img = shared_file("images/obama.jpg")  # one face: before, each of these crashed there, after READY
    cases = [
        (_bundle(tmp_path / "a.tflite", preprocessing_changes={"scale": "0.0039"}), ["'scale'", "number"]),
        (_bundle(tmp_path / "b.tflite", meta_changes={"input_height": 48.0}), ["'input_height'", "integer"]),
        (_bundle(tmp_path / "c.tflite", preprocessing_changes={"margin": None}), ["'margin'", "number"]),
        (_bundle(tmp_path / "d.tflite", output_shape=(1, 7)), ["output tensor shape", "[1, 1, 7]"]),
    ]
    for model, words in cases:
        proc = cli("run", "--model", model, "--source", img, "-o", tmp_path / "ev.jsonl", cwd=tmp_path)
        assert_one_clean_error(proc, 2, *words)


def test_a_camera_password_with_reserved_characters_is_hidden(tmp_path):
    secret = "pa/ss#w?rd9"
    url = f"rtsp://admin:{secret}@127.0.0.1:1/stream"
    proc = cli("run", "--source", url, "--max-frames", "1", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "edge-fer: error:" in proc.stderr
    for text in (proc.stderr, proc.stdout):
        for part in ("pa/ss", "w?rd9", secret):
            assert part not in text, text[-2000:]
    shown = cli("run", "--source", url, "--print-config", cwd=tmp_path)
    assert shown.returncode == 0 and "admin:***@" in shown.stdout, shown.stdout
    assert "pa/ss" not in shown.stdout and "w?rd9" not in shown.stdout, shown.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--source", "admin:hunter2pw@10.255.255.1/stream", "--max-frames", "1"],
        ["--source", "admin:hunter2pw@cam.local/x", "--print-config"],
        ["--source", shared_file("images/obama.jpg"), "--mqtt-host", "alice:hunter2pw@127.0.0.1", "--max-frames", "1"],
    ],
)
def test_a_password_typed_without_a_scheme_is_hidden(tmp_path, args):
    """``user:password@host`` without ``rtsp://`` (the user mistake that produces these lines) was
    printed as it was in the error line and in --print-config."""
    proc = cli("run", *map(str, args), "-o", str(tmp_path / "ev.jsonl"), cwd=tmp_path)
    assert "hunter2pw" not in proc.stderr + proc.stdout, (proc.stderr + proc.stdout)[-2000:]
    assert ":***@" in proc.stderr + proc.stdout, (proc.stderr + proc.stdout)[-2000:]


def test_a_loop_of_symbolic_links_is_a_user_mistake_not_an_internal_error(tmp_path):
    """Python raises RuntimeError (not OSError) when it resolves a loop of links: exit 70 before."""
    (tmp_path / "lo2").symlink_to("lo1")
    (tmp_path / "lo1").symlink_to("lo2")
    clip = shared_file("video/hamilton_clip.mp4")
    for args in (
        ["doctor", "--json", "lo1", "-q"],
        ["run", "--source", str(clip), "--max-frames", "2", "-o", "lo1"],
        ["run", "--source", "lo1", "-o", "ev.jsonl"],
        ["analyze", str(clip), "-o", "lo1"],
    ):
        assert_one_clean_error(cli(*args, cwd=tmp_path), 2, "lo1", "loop of symbolic links")


def test_an_mqtt_host_is_used_as_it_was_checked(tmp_path):
    """The host was checked trimmed (and without IPv6 brackets) but given to paho as typed, so
    ``" 127.0.0.1"`` and ``"[::1]"`` passed the check and never connected."""
    photo = str(shared_file("images/obama.jpg"))
    for typed, used in ((" 127.0.0.1 ", '"127.0.0.1"'), ("[::1]", '"::1"')):
        shown = cli("run", "--source", photo, "--mqtt-host", typed, "--print-config", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        host = [ln for ln in shown.stdout.splitlines() if ln.strip().startswith("host")]
        assert host and host[0].split("=", 1)[1].strip() == used, shown.stdout
