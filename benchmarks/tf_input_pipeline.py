"""The tf.data input pipeline (TensorFlow only): the baseline that ``benchmarks/train_throughput.py --input
tfdata`` measures against the backend-neutral :mod:`edge_fer.train.batches`, which ``edge-fer train``
uses on every backend (2-3x less CPU per image on this 2-core machine). The decoded uint8 arrays are
cached in memory once, shuffled, batched, and augmented per batch (vectorised ops over the whole batch),
then prefetched."""

from __future__ import annotations

import math

import numpy as np

from edge_fer.bundle import Preprocessing


def _affine_batch(images, max_rotate: float, max_shift: float, max_zoom: float, seed_op):
    """Random rotation/shift/zoom per image with one batched projective transform."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    angle = seed_op([n], -max_rotate, max_rotate)
    zoom = seed_op([n], 1.0 - max_zoom, 1.0 + max_zoom)
    tx = seed_op([n], -max_shift, max_shift) * size
    ty = seed_op([n], -max_shift, max_shift) * size
    c = (size - 1.0) / 2.0
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    # output (x, y) -> input: rotate+scale about the centre, then shift
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = c - a0 * c - a1 * c + tx
    b2 = c - b0 * c - b1 * c + ty
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


def make_dataset(
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    batch_size: int = 128,
    training: bool = False,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
    autoencoder: bool = False,
    prep: Preprocessing | None = None,
    erase: float = 0.0,
    one_hot: int | None = None,
):
    """uint8 (N, H, W) faces -> batched float datasets of ``pixel * prep.scale + prep.offset``, the
    bundle's preprocessing (``prep`` None: the bundle's defaults).

    ``autoencoder=True`` yields ``(image, image)`` pairs (the reconstruction target is the
    augmented image itself). Otherwise ``(image, label[, weight])``; ``one_hot=K`` turns labels
    into K-wide one-hot rows (for label smoothing). ``erase`` is the random-erasing probability.
    """
    import tensorflow as tf

    prep = prep or Preprocessing()
    scale, offset = prep.scale, prep.offset
    x = x[..., None] if x.ndim == 3 else x
    tensors: tuple = (x,) if autoencoder or y is None else ((x, y) if sample_weight is None else (x, y, sample_weight))
    ds = tf.data.Dataset.from_tensor_slices(tensors).cache()
    if training:
        ds = ds.shuffle(min(len(x), 30000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    aug_gen = tf.random.Generator.from_seed(seed + 1)

    def to_float(img):
        return tf.cast(img, tf.float32) * scale + offset

    def prep(*t):
        img = to_float(t[0])
        if training:
            img = augment_batch(aug_gen, img)
            if erase > 0 and not autoencoder:
                img = erase_batch(aug_gen, img, erase)
        if autoencoder or y is None:
            return (img, img) if autoencoder else img
        rest = t[1:]
        if one_hot:
            rest = (tf.one_hot(tf.cast(rest[0], tf.int32), one_hot), *rest[1:])
        return (img, *rest)

    ds = ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    return ds.prefetch(tf.data.AUTOTUNE)


def augment_batch(gen, images):
    """Face-suitable augmentation of a float batch in [0, 1] (N, H, W, 1), drawing from the
    ``tf.random.Generator`` ``gen``: horizontal flip, small rotation (+-10 deg), shift (+-8%),
    zoom (+-10%), contrast (x0.8-1.2) and brightness (+-0.1). No vertical flips: upside-down faces
    do not occur in the field."""
    import tensorflow as tf

    n = tf.shape(images)[0]

    def uniform(shape, lo, hi):
        return gen.uniform(shape, lo, hi)

    flip = uniform([n, 1, 1, 1], 0.0, 1.0) < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    images = _affine_batch(images, math.radians(10), 0.08, 0.10, uniform)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * uniform([n, 1, 1, 1], 0.8, 1.2) + mean + uniform([n, 1, 1, 1], -0.1, 0.1)
    return tf.clip_by_value(images, 0.0, 1.0)


def erase_batch(gen, images, p: float):
    """Random erasing: with probability ``p`` per face, one rectangle (4-25% of the area, aspect
    0.5-2) is filled with mid grey, standing in for occlusions (hands, glasses, hair)."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    area = gen.uniform([n], 0.04, 0.25) * size * size
    aspect = tf.exp(gen.uniform([n], math.log(0.5), math.log(2.0)))
    h = tf.minimum(tf.sqrt(area * aspect), size)
    w = tf.minimum(tf.sqrt(area / aspect), size)
    y0 = gen.uniform([n], 0.0, 1.0) * (size - h)
    x0 = gen.uniform([n], 0.0, 1.0) * (size - w)
    coords = tf.range(size)
    rows = (coords[None, :] >= y0[:, None]) & (coords[None, :] < (y0 + h)[:, None])
    cols = (coords[None, :] >= x0[:, None]) & (coords[None, :] < (x0 + w)[:, None])
    box = rows[:, :, None] & cols[:, None, :]
    on = gen.uniform([n], 0.0, 1.0) < p
    mask = (box & on[:, None, None])[..., None]
    return tf.where(mask, tf.fill(tf.shape(images), 0.5), images)
