"""Crops at the border, resize, scale/offset, quantization."""

from __future__ import annotations

import numpy as np
import pytest

from edge_fer.bundle import Preprocessing
from edge_fer.preprocess import (
    InputSpec,
    crop_square,
    prepare_batch,
    quantize,
    square_box,
    to_gray,
)


def test_square_box_is_square_and_centred():
    x0, y0, x1, y1 = square_box((100, 50, 40, 60), 0.1)
    assert x1 - x0 == y1 - y0 == 72
    assert abs((x0 + x1) / 2 - 120) <= 1 and abs((y0 + y1) / 2 - 80) <= 1


@pytest.mark.parametrize(
    "box", [(0, 0, 50, 50), (600, 330, 40, 30), (-20, -20, 60, 60), (620, 0, 80, 120), (5, 300, 200, 100)]
)
def test_border_crops_are_square_and_padded_not_stretched(box):
    gray = np.tile((np.arange(640) % 256).astype(np.uint8)[None, :], (360, 1))
    crop = crop_square(gray, box, 0.2)
    assert crop.ndim == 2 and crop.shape[0] == crop.shape[1]
    x0, y0, x1, y1 = square_box(box, 0.2)
    assert crop.shape[0] == x1 - x0
    # a column of the crop that is inside the frame keeps its pixel value (no horizontal stretch)
    cx = max(0, -x0)
    if x0 + cx < 640:
        assert crop[crop.shape[0] // 2, cx] == gray[0, x0 + cx]


def test_crop_wholly_outside_is_zeros():
    crop = crop_square(np.full((10, 10), 200, np.uint8), (100, 100, 5, 5), 0.0)
    assert crop.shape == (5, 5) and crop.max() == 0


def test_interior_crop_is_a_view_of_the_frame():
    gray = (np.random.default_rng(0).random((100, 100)) * 255).astype(np.uint8)
    crop = crop_square(gray, (30, 30, 20, 20), 0.0)
    assert np.shares_memory(crop, gray)  # no copy of the frame's pixels
    assert np.array_equal(crop, gray[30:50, 30:50])


def test_quantize_int8_uint8_float():
    x = np.array([0.0, 0.5, 1.0], np.float32)
    s = 1 / 255
    assert np.abs(quantize(x, np.int8, s, -128).astype(int) - [-128, 0, 127]).max() <= 1
    assert np.abs(quantize(x, np.uint8, s, 0).astype(int) - [0, 128, 255]).max() <= 1
    assert quantize(x, np.float32, 0.0, 0).dtype == np.float32
    assert quantize(np.array([5.0]), np.int8, s, -128).tolist() == [127]  # clipped


def test_prepare_batch_matches_training_formula():
    gray = np.full((100, 100), 255, np.uint8)
    gray[:, :50] = 0
    pre = Preprocessing(scale=1 / 255, offset=0.0, margin=0.0, resize="area")
    spec = InputSpec(48, 48, 1, np.dtype(np.int8), 1 / 255, -128)
    b = prepare_batch(gray, [(0, 0, 100, 100), (10, 10, 20, 20)], pre, spec)
    assert b.shape == (2, 48, 48, 1) and b.dtype == np.int8
    assert b[0, 0, 0, 0] == -128 and b[0, 0, -1, 0] == 127
    fspec = InputSpec(48, 48, 3, np.dtype(np.float32))
    fb = prepare_batch(gray, [(0, 0, 100, 100)], Preprocessing(scale=2 / 255, offset=-1.0, margin=0.0), fspec)
    assert fb.shape == (1, 48, 48, 3) and fb.min() == pytest.approx(-1.0) and fb.max() == pytest.approx(1.0)
    empty = prepare_batch(gray, [], pre, spec)
    assert empty.shape == (0, 48, 48, 1)


def test_to_gray_accepts_gray_and_bgr():
    g = np.zeros((4, 4), np.uint8)
    assert to_gray(g) is g
    assert to_gray(np.zeros((4, 4, 3), np.uint8)).shape == (4, 4)
