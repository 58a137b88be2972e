"""The autoencoder and classifier: build, one training step, save and reload, Edge-TPU-friendly ops."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.train
try:
    import tensorflow as tf
except ImportError:  # a runtime-only install: conftest skips every test here (marked `train`)
    tf = None
keras = tf.keras if tf is not None else None

from edge_fer.train.batches import class_weights  # noqa: E402
from edge_fer.train.metrics import classification_report  # noqa: E402
from edge_fer.train.model import NetConfig, build_autoencoder, build_classifier, build_decoder, build_encoder  # noqa: E402

from tests.benchmark_modules import benchmark_module  # noqa: E402
from tests.datasets import faces  # noqa: E402

# the tf.data input pipeline: benchmarks/train_throughput.py's baseline, not the trainer's
_tf_pipeline = benchmark_module("tf_input_pipeline")
augment_batch, make_dataset = _tf_pipeline.augment_batch, _tf_pipeline.make_dataset

CFG = NetConfig(width=4, latent_channels=8)


def test_autoencoder_is_undercomplete_and_learns_one_step(tmp_path):
    enc, dec = build_encoder(CFG), build_decoder(CFG)
    ae = build_autoencoder(enc, dec)
    assert enc.output_shape == (None, 6, 6, 8) and CFG.bottleneck_size == 288 < 48 * 48
    assert ae.output_shape == (None, 48, 48, 1)
    x = faces(16)[0][..., None].astype(np.float32) / 255.0
    ae.compile(keras.optimizers.Adam(1e-2), "mse")
    losses = ae.fit(x, x, epochs=5, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="undercomplete"):
        build_encoder(NetConfig(width=4, latent_channels=64))


def test_classifier_trains_saves_and_reloads(tmp_path):
    enc = build_encoder(CFG)
    cls = build_classifier(enc, CFG)
    assert cls.output_shape == (None, 7)
    x = np.random.default_rng(1).random((14, 48, 48, 1), dtype=np.float32)
    y = np.arange(14) % 7
    cls.compile("adam", "sparse_categorical_crossentropy")
    cls.fit(x, y, epochs=1, batch_size=7, verbose=0)
    p = cls.predict(x, verbose=0)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    cls.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), p, atol=1e-6)
    # only int8/Edge-TPU-friendly layer types in the deployed network (the encoder's included)
    kinds = {type(layer).__name__ for layer in cls.layers + enc.layers if layer is not enc}
    assert kinds <= {
        "InputLayer",
        "Conv2D",
        "BatchNormalization",
        "ReLU",
        "GlobalAveragePooling2D",
        "Dropout",
        "Dense",
        "Softmax",
    }


def test_augmentation_keeps_shape_range_and_is_seeded():
    x = np.random.default_rng(2).random((8, 48, 48, 1), dtype=np.float32)
    a = augment_batch(tf.random.Generator.from_seed(5), tf.constant(x)).numpy()
    b = augment_batch(tf.random.Generator.from_seed(5), tf.constant(x)).numpy()
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, x)


def test_datasets_scale_and_weights():
    x = np.full((10, 48, 48), 255, np.uint8)
    y = np.array([0] * 8 + [1] * 2)
    w = class_weights(y, 7)
    assert w[1] > w[0] and abs(w[y].mean() - 1) < 1e-6
    batch = next(iter(make_dataset(x, y, batch_size=4, sample_weight=w[y])))
    assert batch[0].shape == (4, 48, 48, 1) and float(batch[0].numpy().max()) == pytest.approx(1.0)
    assert len(batch) == 3
    ae_batch = next(iter(make_dataset(x, batch_size=4, autoencoder=True, training=True)))
    assert ae_batch[0].shape == ae_batch[1].shape


def test_classification_report():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    r = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert r["per_class"]["b"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["per_class"]["a"]["recall"] == 0.5
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * (2 / 3) * 1 / (2 / 3 + 1), 2 * 1 * 0.5 / 1.5]
    assert r["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-6)
    # a class absent from both truth and predictions is not averaged (as scikit-learn)
    r4 = classification_report(y_true, y_pred, ["a", "b", "c", "d"])
    assert r4["macro_f1"] == pytest.approx(r["macro_f1"]) and r4["confusion_matrix"][3] == [0, 0, 0, 0]


def test_res2_adds_a_second_6x6_residual_block():
    res, res2 = (build_encoder(NetConfig(width=4, latent_channels=8, arch=a)) for a in ("res", "res2"))
    assert res.output_shape == res2.output_shape == (None, 6, 6, 8)
    names = {layer.name for layer in res2.layers} - {layer.name for layer in res.layers}
    assert {"enc7_a_conv", "enc7_b_conv", "enc7_add"} <= names
    add = res2.get_layer("enc7_add")
    assert add.output.shape[1:] == (6, 6, 32)  # 8w channels at 6x6
    extra = res2.count_params() - res.count_params()
    assert extra == 2 * (9 * 32 * 32) + 2 * 2 * 32 + 2 * 2 * 32  # two 3x3 convs + their BN (gamma/beta, mean/var)
