"""The bundle loader and batched classifier (int8, uint8 and float32 inputs)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_fer.classify import Classifier, default_model_path, dequantize
from edge_fer.errors import ModelError
from edge_fer.labels import LABELS


@pytest.fixture(scope="module")
def frame_gray():
    return (np.random.default_rng(1).random((360, 640)) * 255).astype(np.uint8)


BOXES = [(10, 10, 50, 50), (600, 300, 80, 80), (100, 100, 30, 40)]


@pytest.mark.parametrize("fixture", ["tiny_bundle", "tiny_bundle_uint8", "tiny_bundle_float"])
def test_batched_equals_one_by_one(request, fixture, frame_gray):
    clf = Classifier.from_file(request.getfixturevalue(fixture), device="cpu")
    assert clf.labels == LABELS
    preds = clf.classify(frame_gray, BOXES)
    assert len(preds) == 3
    for p, box in zip(preds, BOXES):
        assert p.scores.dtype == np.float32 and p.scores.shape == (7,)
        assert p.scores.sum() == pytest.approx(1.0, abs=1e-4)
        single = clf.classify(frame_gray, [box])[0]
        np.testing.assert_allclose(single.scores, p.scores, atol=1e-5)
    assert clf.classify(frame_gray, []) == []


def test_input_spec_from_interpreter(tiny_bundle, tiny_bundle_uint8, tiny_bundle_float):
    assert Classifier.from_file(tiny_bundle).input_spec.dtype == np.int8
    assert Classifier.from_file(tiny_bundle_uint8).input_spec.dtype == np.uint8
    assert Classifier.from_file(tiny_bundle_float).input_spec.dtype == np.float32


def test_dequantize_is_the_one_place():
    q = np.array([[-128, 127, -128]], np.int8)
    p = dequantize(q, 1 / 256, -128)
    assert p.sum() == pytest.approx(1.0) and p.argmax() == 1
    logits = np.array([[2.0, -1.0, 0.5]], np.float32)
    assert dequantize(logits, 0.0, 0).sum() == pytest.approx(1.0)


def test_not_a_model_is_refused(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"hello, I am not a model" * 10)
    with pytest.raises(ModelError, match="not a TFLite model"):
        Classifier.from_file(bad)


def test_model_without_metadata_is_refused(tmp_path, tiny_bundle):
    from edge_fer.bundle import TFLITE_METADATA_NAME

    data = tiny_bundle.read_bytes()
    # hide the entry by renaming it in place (same length)
    renamed = data.replace(TFLITE_METADATA_NAME.encode(), b"x" * len(TFLITE_METADATA_NAME))
    p = tmp_path / "nometa.tflite"
    p.write_bytes(renamed)
    with pytest.raises(ModelError, match="without edge-fer metadata"):
        Classifier.from_file(p)


def test_input_shape_mismatch_is_refused(tmp_path, tiny_bundle):
    data = tiny_bundle.read_bytes()
    # the metadata says 64x64, the graph takes 48x48 (edited in place: same length)
    for key in (b'"input_height": 48', b'"input_width": 48'):
        assert data.count(key) == 1
        data = data.replace(key, key[:-2] + b"64")
    p = tmp_path / "wrong.tflite"
    p.write_bytes(data)
    with pytest.raises(ModelError, match="does not match"):
        Classifier.from_file(p)


def test_missing_file_and_missing_default(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="cannot read model"):
        Classifier.from_file(tmp_path / "nope.tflite")
    import edge_fer.classify as c

    monkeypatch.setattr(c, "DEFAULT_MODEL_NAME", "definitely_missing.tflite")
    with pytest.raises(ModelError, match="default model is not installed"):
        default_model_path()


def test_batch_resize_failure_falls_back_to_loop(tiny_bundle, frame_gray, monkeypatch):
    clf = Classifier.from_file(tiny_bundle)
    ref = [p.scores for p in clf.classify(frame_gray, BOXES)]
    clf2 = Classifier.from_file(tiny_bundle)

    def boom(*a, **k):
        raise ValueError("resize not supported")

    orig = clf2.interpreter.resize_tensor_input
    calls = {"n": 0}

    def resize(idx, shape, strict=False):
        calls["n"] += 1
        if shape[0] != 1:
            boom()
        return orig(idx, shape)

    monkeypatch.setattr(clf2.interpreter, "resize_tensor_input", resize, raising=False)
    preds = clf2.classify(frame_gray, BOXES)
    assert clf2._can_resize is False and calls["n"] >= 1
    for a, b in zip(ref, preds):
        np.testing.assert_allclose(a, b.scores, atol=1e-5)
