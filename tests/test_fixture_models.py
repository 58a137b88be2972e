"""The committed tiny model bundles (tests/data) are what tests/fixture_models.py builds.

The first check runs everywhere (no TensorFlow): the committed metadata is what today's ModelMeta
writes, so a change to the bundle format shows here first. The others rebuild the files with
TensorFlow (``train``) and compare."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_fer.bundle import ModelMeta, read_bundle_meta
from edge_fer.interpreter import load_interpreter
from edge_fer.quality import quality_path
from tests.fixture_models import AE_BUNDLE, CLASSIFIERS, build_tiny_ae_bundle, build_tiny_bundle

REBUILD = "rebuild them: python -m tests.fixture_models"


def io_details(path) -> list[tuple]:
    """(shape, dtype, quantization) of every input and output tensor."""
    it = load_interpreter(model_path=str(path), device="cpu").interpreter
    return [
        (tuple(d["shape"]), np.dtype(d["dtype"]).name, tuple(float(q) for q in d["quantization"]))
        for d in [*it.get_input_details(), *it.get_output_details()]
    ]


@pytest.mark.parametrize("io_type", sorted(CLASSIFIERS))
def test_committed_classifier_metadata_is_current(io_type):
    meta = read_bundle_meta(CLASSIFIERS[io_type].read_bytes())
    want = ModelMeta(provenance={"fixture": "tests/fixture_models.py", "io_type": io_type})
    assert meta.to_json() == want.to_json(), f"tests/data/{CLASSIFIERS[io_type].name} is stale: {REBUILD}"
    want_dtype = {"int8": "int8", "uint8": "uint8", "float32": "float32"}[io_type]
    (in_shape, in_dtype, _), (out_shape, out_dtype, _) = io_details(CLASSIFIERS[io_type])
    assert (in_shape, out_shape) == ((1, 48, 48, 1), (1, 7)) and in_dtype == out_dtype == want_dtype


def test_committed_quality_pair_loads():
    meta = read_bundle_meta(AE_BUNDLE.read_bytes())
    assert meta.input_height == meta.input_width == 48 and len(meta.labels) == 7
    (ae_in, ae_in_dtype, _), (ae_out, ae_out_dtype, _) = io_details(quality_path(AE_BUNDLE))
    assert ae_in == ae_out == (1, 48, 48, 1) and ae_in_dtype == ae_out_dtype == "int8"


@pytest.mark.train
@pytest.mark.parametrize("io_type", sorted(CLASSIFIERS))
def test_committed_classifiers_are_what_the_generator_builds(tmp_path, io_type):
    built = build_tiny_bundle(tmp_path / f"tiny_{io_type}.tflite", io_type)
    committed = CLASSIFIERS[io_type]
    assert read_bundle_meta(built.read_bytes()) == read_bundle_meta(committed.read_bytes()), REBUILD
    assert io_details(built) == io_details(committed), REBUILD
    # the same graph and weights: the same scores for the same faces (TensorFlow's converter may
    # lay the file out differently from one release to the next, so bytes are not compared)
    x = np.random.default_rng(0).random((4, 48, 48, 1), dtype=np.float32)
    assert np.array_equal(_scores(built, x), _scores(committed, x)), REBUILD


def _scores(path, x: np.ndarray) -> np.ndarray:
    it = load_interpreter(model_path=str(path), device="cpu").interpreter
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]
    rows = []
    for face in x:
        if scale:  # integer input: quantize as the runtime does
            lo, hi = np.iinfo(inp["dtype"]).min, np.iinfo(inp["dtype"]).max
            face = np.clip(np.round(face / scale + zero), lo, hi)
        it.set_tensor(inp["index"], face[None].astype(inp["dtype"]))
        it.invoke()
        rows.append(it.get_tensor(out["index"])[0].copy())
    return np.stack(rows)


@pytest.mark.train
@pytest.mark.slow  # trains the tiny autoencoder (60 epochs) and converts it
def test_committed_quality_pair_is_what_the_generator_builds(tmp_path):
    built = build_tiny_ae_bundle(tmp_path / AE_BUNDLE.name)
    got, want = (json.loads(read_bundle_meta(p.read_bytes()).to_json()) for p in (built, AE_BUNDLE))
    for volatile in ("provenance", "metrics", "quantization"):  # temp paths, dates, versions, accuracies
        assert set(got[volatile]) == set(want[volatile]), volatile
        got.pop(volatile), want.pop(volatile)
    assert got == want, REBUILD
    for a, b in ((built, AE_BUNDLE), (quality_path(built), quality_path(AE_BUNDLE))):
        # shapes and dtypes (the quantization scales follow the trained weights)
        assert [d[:2] for d in io_details(a)] == [d[:2] for d in io_details(b)], REBUILD
