"""The sharpness gap between blurred training faces and sharp real faces is found and matched."""

from __future__ import annotations

import numpy as np
import pytest
from edge_fer.train.sharpness import assess, gaussian_blur, laplacian_variance, match_sigma

from edge_fer.bundle import ModelMeta, Preprocessing
from edge_fer.errors import ModelError
from edge_fer.preprocess import InputSpec, blur, to_model_input
from tests.datasets import faces


def test_blurred_training_faces_are_detected_and_matched():
    sharp, _ = faces(200, seed=1)
    train = gaussian_blur(faces(200, seed=2)[0], 3.0)
    r = assess(train, sharp)
    assert r["degraded"] and r["train_laplacian_var"] < 0.25 * r["val_laplacian_var"]
    assert 2.0 < r["blur_sigma"] < 4.5
    # after the matching blur the two splits are about equally sharp
    assert r["val_laplacian_var_after_blur"] == pytest.approx(r["train_laplacian_var"], rel=0.15)


def test_equally_sharp_splits_need_no_blur():
    a, b = faces(100, seed=3)[0], faces(100, seed=4)[0]
    r = assess(a, b)
    assert not r["degraded"] and r["blur_sigma"] == 0.0
    assert match_sigma(a, laplacian_variance(a) * 2) == 0.0


def test_runtime_applies_the_bundle_blur_before_quantizing():
    crops = faces(3, seed=5)[0]
    spec = InputSpec(48, 48, 1, np.dtype(np.int8), 1 / 255, -128)
    plain = to_model_input(list(crops), Preprocessing(), spec)
    blurred = to_model_input(list(crops), Preprocessing(blur_sigma=3.0), spec)
    expected = (blur(crops, 3.0).astype(np.int32) - 128).astype(np.int8)[..., None]
    np.testing.assert_array_equal(blurred, expected)
    assert not np.array_equal(plain, blurred)
    assert blur(crops, 0.0) is crops


def test_bundle_metadata_carries_and_validates_blur_sigma():
    meta = ModelMeta(preprocessing=Preprocessing(blur_sigma=3.19))
    again = ModelMeta.from_json(meta.to_json())
    assert again.preprocessing.blur_sigma == 3.19
    d = meta.to_dict()
    d["preprocessing"]["blur_sigma"] = -1
    with pytest.raises(ModelError, match="blur_sigma"):
        ModelMeta.from_dict(d)
