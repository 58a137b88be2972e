"""Training on any Keras 3 backend: the backend rule, the backend-neutral batches, and a model trained
on JAX (or PyTorch) that TensorFlow (what `edge-fer convert` runs on) loads with the same predictions."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from edge_fer.train import backend as bk
from edge_fer.train.batches import FaceBatches, affine_matrices, augment, erase

from edge_fer.bundle import Preprocessing
from edge_fer.errors import ConfigError, EdgeFerError, MissingExtraError

REPO = Path(__file__).resolve().parents[1]


# --- resolve_backend / activate ------------------------------------------------------------------


@pytest.fixture
def installed(monkeypatch):
    """Pretend exactly the given modules are importable: installed('keras', 'jax')."""

    def set_found(*modules):
        monkeypatch.setattr(bk, "_found", lambda m: m in modules)

    monkeypatch.setenv("KERAS_BACKEND", "")  # restored afterwards, also what activate() sets
    monkeypatch.delenv("KERAS_BACKEND")
    return set_found


def test_default_order_is_tensorflow_then_jax_then_torch(installed):
    installed("keras", "tensorflow", "jax", "torch")
    assert bk.resolve_backend() == "tensorflow"
    installed("keras", "jax", "torch")
    assert bk.resolve_backend(None) == "jax"
    installed("keras", "torch")
    assert bk.resolve_backend("") == "torch"


def test_explicit_choice_beats_the_environment_which_beats_the_default(installed, monkeypatch):
    installed("keras", "tensorflow", "jax", "torch")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert bk.resolve_backend() == "torch"
    assert bk.resolve_backend("JAX") == "jax"


@pytest.mark.parametrize("backend, extra", [("jax", "jax"), ("torch", "torch"), ("tensorflow", "train")])
def test_missing_backend_names_its_extra(installed, backend, extra):
    installed("keras")
    with pytest.raises(MissingExtraError, match=rf"--backend {backend} needs .*pip install 'edge-fer\[{extra}\]'"):
        bk.resolve_backend(backend)
    installed(backend)  # the framework without Keras 3
    with pytest.raises(MissingExtraError, match=r"keras is not installed") as e:
        bk.resolve_backend(backend)
    assert "\n" not in str(e.value)


def test_environment_variable_is_checked_too(installed, monkeypatch):
    installed("keras", "tensorflow")
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(MissingExtraError, match=r"KERAS_BACKEND=jax needs the 'jax' extra"):
        bk.resolve_backend()
    monkeypatch.setenv("KERAS_BACKEND", "numpy")  # a Keras backend that cannot train
    with pytest.raises(ConfigError, match="choose tensorflow, jax, torch"):
        bk.resolve_backend()


def test_no_backend_at_all_names_every_extra(installed):
    installed()
    with pytest.raises(MissingExtraError) as e:
        bk.resolve_backend()
    msg = str(e.value)
    assert "edge-fer[train]" in msg and "edge-fer[jax]" in msg and "edge-fer[torch]" in msg
    with pytest.raises(ConfigError, match="unknown backend 'theano'"):
        bk.resolve_backend("theano")


def test_activate_sets_the_variable_or_refuses_a_keras_already_on_another_backend(installed, monkeypatch):
    installed("keras", "tensorflow", "jax")
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    bk.activate("jax")
    assert os.environ["KERAS_BACKEND"] == "jax"
    fake = types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: "tensorflow"))
    monkeypatch.setitem(sys.modules, "keras", fake)
    bk.activate("tensorflow")  # the one already loaded: fine
    with pytest.raises(EdgeFerError, match="already imported with the tensorflow backend.*KERAS_BACKEND=jax"):
        bk.activate("jax")


@pytest.mark.train
def test_describe_device_on_tensorflow():
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip(f"this process runs Keras on {keras.backend.backend()}")
    d = bk.describe_device()
    assert d["backend"] == "tensorflow" and d["keras"] == keras.__version__ and d["backend_version"]
    assert d["devices"] and all(x == "cpu" or x.startswith("cuda:") for x in d["devices"])


# --- the backend-neutral batches -----------------------------------------------------------------


def _faces(n: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_batches_shapes_dtypes_and_scale():
    x, y = _faces(10), np.arange(10) % 7
    b = FaceBatches(x, y, batch_size=4)
    assert len(b) == 3
    img, labels = b[0]
    assert img.shape == (4, 48, 48, 1) and img.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_allclose(img[..., 0], x[:4] / np.float32(255), rtol=1e-6)  # no augmentation, in order
    assert b[2][0].shape == (2, 48, 48, 1)  # the remainder is kept
    with pytest.raises(IndexError):
        b[3]
    full = FaceBatches(np.full((3, 48, 48), 255, np.uint8), batch_size=4)
    assert isinstance(full[0], np.ndarray) and float(full[0].max()) == pytest.approx(1.0)  # no labels: images
    sym = FaceBatches(x, y, batch_size=4, training=True, prep=Preprocessing(scale=1 / 127.5, offset=-1.0))
    for i in range(len(sym)):
        v = sym[i][0]
        assert v.min() >= -1.0 - 1e-6 and v.max() <= 1.0 + 1e-6 and v.min() < -0.5 < 0.5 < v.max()


def test_batches_are_seeded_per_epoch_and_batch():
    x, y = _faces(12), np.arange(12)
    a, b = (FaceBatches(x, y, batch_size=5, training=True, seed=3) for _ in range(2))
    np.testing.assert_array_equal(a[1][0], b[1][0])
    np.testing.assert_array_equal(a[2][1], b[2][1])
    first = [a[i][1] for i in range(len(a))]
    assert sorted(np.concatenate(first).tolist()) == list(range(12))  # every face once per epoch
    a.on_epoch_end()
    second = [a[i][1] for i in range(len(a))]
    assert sorted(np.concatenate(second).tolist()) == list(range(12))
    assert any(not np.array_equal(p, q) for p, q in zip(first, second))  # reshuffled
    other = FaceBatches(x, y, batch_size=5, training=True, seed=4)
    assert not np.array_equal(other[0][0], b[0][0])


def test_augmentation_changes_pixels_but_keeps_labels():
    levels = np.array([0, 60, 120, 180, 240])
    x = np.repeat(levels, 4)[:, None, None] * np.ones((1, 48, 48), np.uint8)
    x = x.astype(np.uint8)
    y = np.repeat(np.arange(5), 4)
    x[:, 10:20, 5:12] = 255 - x[:, 10:20, 5:12]  # an asymmetric patch, so flips and warps show
    aug = FaceBatches(x, y, batch_size=8, training=True, seed=1)
    for i in range(len(aug)):
        img, labels = aug[i]
        assert img.min() >= 0.0 and img.max() <= 1.0
        # the background level (+-0.1 brightness, contrast about the mean) still tells which face it is
        median = np.median(img.reshape(len(img), -1), axis=1)
        np.testing.assert_array_equal(np.abs(median[:, None] - levels[None] / 255).argmin(1), labels)
        np.testing.assert_array_equal(labels, y[aug.indices(i)])
        before = x[aug.indices(i)][..., None] / np.float32(255)
        assert all(not np.allclose(a, b, atol=1e-3) for a, b in zip(img, before))


@pytest.mark.train
def test_warp_matches_the_tfdata_transform():
    """The OpenCV warp samples where tf.data's ImageProjectiveTransformV3 does (flip included, reflected
    borders), so the neutral pipeline augments like the TensorFlow one."""
    import cv2
    import tensorflow as tf

    x = np.stack([cv2.GaussianBlur(f, (0, 0), 2) for f in _faces(8).astype(np.float32) / 255])
    m = affine_matrices(np.random.default_rng(7), 8, 48, 48)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    ours = np.stack(
        [cv2.warpAffine(f, mm, (48, 48), flags=flags, borderMode=cv2.BORDER_REFLECT) for f, mm in zip(x, m)]
    )
    flip = m[:, 0, 0] * m[:, 1, 1] < 0  # a flip mirrors the matrix's orientation
    a = m.copy()
    a[flip, 0, 2] -= 47
    a[flip, 0, :] *= -1
    src = np.where(flip[:, None, None], x[:, :, ::-1], x)[..., None]
    t = np.concatenate([a.reshape(8, 6), np.zeros((8, 2))], 1).astype(np.float32)
    ref = tf.raw_ops.ImageProjectiveTransformV3(
        images=src, transforms=t, output_shape=[48, 48], fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT"
    ).numpy()[..., 0]
    assert 0 < flip.sum() < 8
    assert np.abs(ours - ref).max() < 5e-3


def test_erase_one_grey_box_per_face():
    ones = np.ones((16, 48, 48), np.float32)
    out = erase(ones.copy(), np.random.default_rng(0), 1.0)
    frac = (out == 0.5).mean(axis=(1, 2))
    assert np.all(frac > 0.02) and np.all(frac < 0.3)
    np.testing.assert_array_equal(erase(ones.copy(), np.random.default_rng(0), 0.0), ones)
    x, y = _faces(16), np.arange(16) % 7
    b = FaceBatches(x, y, batch_size=16, training=True, erase=1.0)
    assert ((b[0][0] == 0.5).mean(axis=(1, 2, 3)) > 0.02).all()


def test_one_hot_weights_and_autoencoder_pairs():
    x, y = _faces(6), np.array([0, 1, 2, 3, 4, 6])
    w = np.linspace(0.5, 1.5, 6).astype(np.float32)
    img, oh, sw = FaceBatches(x, y, batch_size=6, training=True, sample_weight=w, one_hot=7)[0]
    assert oh.shape == (6, 7) and oh.dtype == np.float32 and np.allclose(oh.sum(1), 1)
    order = oh.argmax(1)
    np.testing.assert_allclose(sw, w[np.searchsorted(y, order)])  # each weight stays with its face
    src, target = FaceBatches(x, y, batch_size=4, training=True, autoencoder=True, erase=1.0)[0]
    assert src is target and src.shape == (4, 48, 48, 1) and not (src == 0.5).any()  # no erasing for the AE
    assert augment(np.zeros((0, 48, 48), np.float32), np.random.default_rng(0)).shape == (0, 48, 48)


def test_training_batches_cut_to_a_multiple_of_the_devices():
    x, y = _faces(33), np.arange(33)
    b = FaceBatches(x, y, batch_size=8, training=True, multiple=2)
    sizes = [len(b[i][1]) for i in range(len(b))]
    assert sizes == [8, 8, 8, 8] and len(set(np.concatenate([b[i][1] for i in range(len(b))]))) == 32
    b3 = FaceBatches(_faces(34), np.arange(34), batch_size=9, training=True, multiple=3)
    assert [len(b3[i][1]) for i in range(len(b3))] == [9, 9, 9, 6]
    assert len(FaceBatches(x, y, batch_size=8, multiple=2)) == 5  # evaluation keeps every face


def test_evaluation_batches_padded_at_weight_zero_for_the_devices():
    x, y = _faces(11), np.arange(11) % 7
    ev = FaceBatches(x, y, batch_size=4, multiple=2, one_hot=7)
    assert len(ev) == 3 and ev.pad == 1
    img, labels, w = ev[0]
    assert len(img) == 4 and w.tolist() == [1, 1, 1, 1]
    img, labels, w = ev[2]  # faces 8-10 and face 0 again, which does not count
    assert len(img) == len(labels) == 4 and w.tolist() == [1, 1, 1, 0]
    np.testing.assert_allclose(img[3, ..., 0], x[0] / np.float32(255), rtol=1e-6)
    src, target, w = FaceBatches(x, batch_size=4, multiple=2, autoencoder=True)[2]
    assert src is target and w.tolist() == [1, 1, 1, 0]
    assert len(FaceBatches(x, batch_size=4, multiple=2)[2]) == 3  # no target: nothing to weigh, no padding
    assert FaceBatches(_faces(12), np.arange(12), batch_size=4, multiple=2)[2][1].shape == (4,)  # no weights


@pytest.mark.train
def test_make_dataset_is_a_keras_pydataset_that_pickles_by_name():
    import pickle

    import keras
    from edge_fer.train import batches

    ds = batches.make_dataset(_faces(10), np.arange(10) % 7, batch_size=4, training=True, workers=2)
    assert isinstance(ds, keras.utils.PyDataset) and len(ds) == 3 and ds.workers == 2
    again = pickle.loads(pickle.dumps(ds))  # worker processes get it by module + name
    np.testing.assert_array_equal(again[1][0], ds[1][0])


# --- JAX (PyTorch: slow): train, save .keras, load under TensorFlow ----------------------------------

# on the backend KERAS_BACKEND names, with TensorFlow blocked as on the GPU machine
TRAIN = """
import json, sys
sys.modules["tensorflow"] = None  # as on a machine without TensorFlow: any import of it fails
import keras
import numpy as np
from edge_fer.train.backend import describe_device
from edge_fer.train.batches import make_dataset
from edge_fer.train.model import NetConfig, build_autoencoder, build_classifier, build_decoder, build_encoder

cfg = NetConfig(width=4, latent_channels=8, arch="res")
enc, dec = build_encoder(cfg), build_decoder(cfg)
ae, cls = build_autoencoder(enc, dec), build_classifier(enc, cfg)
rng = np.random.default_rng(0)
x, y = rng.integers(0, 256, (32, 48, 48), dtype=np.uint8), np.arange(32) % 7
ae.compile(keras.optimizers.Adam(1e-3), "mse")
ae.fit(make_dataset(x, batch_size=16, training=True, autoencoder=True), epochs=1, verbose=0)
cls.compile(keras.optimizers.Adam(1e-3), keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
w = np.ones(32, np.float32)
h = cls.fit(make_dataset(x, y, batch_size=16, training=True, sample_weight=w, erase=0.5, one_hot=7, workers=2),
            validation_data=make_dataset(x, y, batch_size=16, one_hot=7), epochs=2, verbose=0)
np.save(sys.argv[1] + ".npy", cls.predict(make_dataset(x, batch_size=16), verbose=0))
cls.save(sys.argv[1])
print(json.dumps({"device": describe_device(), "history": h.history,
                  "tensorflow": sys.modules.get("tensorflow") is not None}))
"""

TF_LOAD = """
import sys
import numpy as np
from tensorflow import keras
m = keras.models.load_model(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (32, 48, 48), dtype=np.uint8)
p = m.predict(x[..., None].astype(np.float32) / 255, verbose=0)
print(keras.backend.backend(), float(np.abs(p - np.load(sys.argv[1] + ".npy")).max()))
"""


def _run(code: str, *args: str, backend: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600, env=env, cwd=REPO
    )


@pytest.mark.train
@pytest.mark.parametrize("backend", ["jax", pytest.param("torch", marks=pytest.mark.slow)])
def test_trained_on_another_backend_loads_under_tensorflow(tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install 'edge-fer[{backend}]')")
    model = str(tmp_path / "model.keras")
    r = _run(TRAIN, model, backend=backend)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["device"]["backend"] == backend and out["device"]["devices"] and not out["tensorflow"]
    assert len(out["history"]["loss"]) == 2 and all(np.isfinite(out["history"]["loss"]))
    r = _run(TF_LOAD, model, backend="tensorflow")
    assert r.returncode == 0, r.stderr[-3000:]
    name, diff = r.stdout.strip().splitlines()[-1].split()
    assert name == "tensorflow" and float(diff) < 1e-5


DATA_PARALLEL = """
import numpy as np
from edge_fer.train.backend import activate, jax_data_parallel
activate("jax")
n = jax_data_parallel()
import keras
from edge_fer.train.batches import make_dataset
inp = keras.Input((48, 48, 1))
h = keras.layers.GlobalAveragePooling2D()(keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inp)))
m = keras.Model(inp, keras.layers.Dense(7, activation="softmax")(h))
x, y = np.zeros((33, 48, 48), np.uint8), np.arange(33) % 7
m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
val = make_dataset(x, y, batch_size=16, multiple=n)  # 33 faces: the last batch padded to 2
h = m.fit(make_dataset(x, y, batch_size=16, training=True, multiple=n), validation_data=val, epochs=1, verbose=0)
assert h.history["val_accuracy"] and h.history["val_loss"][0] > 0
from edge_fer.train.results import predict_padded
assert predict_padded(m, np.zeros((3, 48, 48, 1), np.float32), n).shape == (3, 7)
print(n, type(keras.distribution.distribution()).__name__)
"""


@pytest.mark.train
def test_jax_data_parallel_over_several_devices():
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install 'edge-fer[jax]')")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "KERAS_BACKEND": "jax"}
    r = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL], capture_output=True, text=True, timeout=600, env=env, cwd=REPO
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[-2:] == ["2", "DataParallel"]
