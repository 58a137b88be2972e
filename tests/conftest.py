"""Shared fixtures. Tests that need ../shared/data skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EDGE_FER_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(rel: str) -> Path:
    """A file under ../shared/data, or skip the test when it is not there."""
    p = SHARED_DATA / rel
    if not p.exists():
        pytest.skip(f"{p} not found (set EDGE_FER_SHARED_DATA to the shared data folder)")
    return p


@pytest.fixture
def hamilton_clip() -> Path:
    return shared_file("video/hamilton_clip.mp4")


@pytest.fixture
def face_images() -> dict[str, Path]:
    return {n: shared_file(f"images/{n}.jpg") for n in ("obama", "obama_240p", "two_people")}


@pytest.fixture
def yunet_model() -> Path:
    """The official YuNet release, as shipped in the package (no shared data needed)."""
    from edge_fer.models import shipped_yunet

    return shipped_yunet()


@pytest.fixture
def other_yunet_model() -> Path:
    """A second, different YuNet build (a fixture only: where a test needs a file that is not the shipped one)."""
    return shared_file("models/face_detection_yunet.onnx")


@pytest.fixture
def fer2013_zip() -> Path:
    return shared_file("fer2013.zip")


@pytest.fixture(autouse=True)
def _isolated_model_cache(tmp_path_factory, monkeypatch):
    """No test sees or writes the user's model cache (~/.cache/edge-fer, `edge-fer models pull`):
    `--detector yunet` without a path, and `models pull`, look in a fresh folder."""
    monkeypatch.setenv("EDGE_FER_CACHE_DIR", str(tmp_path_factory.mktemp("edge-fer-cache")))


# --- a tiny int8 model bundle, made with TensorFlow (test fixture only) ---------------------------
# The runtime never imports TensorFlow; only this fixture does, lazily. The bundles are cached in
# pytest's cache folder, keyed by the code that makes them (this file, the metadata schema and its
# embedding), so TensorFlow runs once per machine and a schema change rebuilds them.


def _fixture_key() -> str:
    import hashlib

    h = hashlib.sha256()
    for rel in ("tests/conftest.py", "edge_fer/bundle.py", "convert/metadata.py"):
        h.update((REPO / rel).read_bytes())
    return "tiny-bundle-" + h.hexdigest()[:12]


TINY_BUNDLE_VERSION = _fixture_key()


def build_tiny_bundle(path: Path, io_type: str = "int8", seed: int = 0) -> Path:
    """Write a tiny FER-shaped .tflite bundle: input (48,48,1), softmax 7, edge-fer metadata.

    ``io_type``: ``int8`` / ``uint8`` (full-integer, int in/out) or ``float32`` (float model)."""
    import numpy as np

    tf = pytest.importorskip("tensorflow")
    from edge_fer.convert.metadata import embed_metadata

    from edge_fer.bundle import ModelMeta

    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((48, 48, 1))
    x = tf.keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inp)
    x = tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(7, activation="softmax")(x)
    model = tf.keras.Model(inp, out)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if io_type != "float32":
        rng = np.random.default_rng(seed)

        def rep():
            for _ in range(32):
                yield [rng.random((1, 48, 48, 1), dtype=np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = getattr(tf, io_type)
        conv.inference_output_type = getattr(tf, io_type)
    raw = conv.convert()
    meta = ModelMeta(provenance={"fixture": TINY_BUNDLE_VERSION, "io_type": io_type})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(embed_metadata(raw, meta))
    return path


def _cached_bundle(pytestconfig, tmp_path_factory, io_type: str) -> Path:
    try:
        folder = Path(pytestconfig.cache.mkdir(TINY_BUNDLE_VERSION))
    except Exception:  # no cache provider (-p no:cacheprovider)
        folder = tmp_path_factory.mktemp(TINY_BUNDLE_VERSION)
    path = folder / f"tiny_{io_type}.tflite"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        build_tiny_bundle(tmp, io_type)
        tmp.replace(path)
    return path


@pytest.fixture(scope="session")
def tiny_bundle(pytestconfig, tmp_path_factory) -> Path:
    """Path of a tiny full-int8 (int8 in/out) edge-fer bundle."""
    return _cached_bundle(pytestconfig, tmp_path_factory, "int8")


@pytest.fixture(scope="session")
def tiny_bundle_uint8(pytestconfig, tmp_path_factory) -> Path:
    return _cached_bundle(pytestconfig, tmp_path_factory, "uint8")


@pytest.fixture(scope="session")
def tiny_bundle_float(pytestconfig, tmp_path_factory) -> Path:
    return _cached_bundle(pytestconfig, tmp_path_factory, "float32")
