"""The backend-neutral training input: uint8 faces -> shuffled, augmented float batches in numpy and
OpenCV, served to Keras 3 on any backend (TensorFlow, JAX, PyTorch) as a ``keras.utils.PyDataset``.

The same behaviour as the tf.data pipeline (``benchmarks/tf_input_pipeline.py``, its ``make_dataset``): the decoded uint8 arrays stay in
memory, are reshuffled each epoch, batched, and augmented per batch: horizontal flip, rotation
(+-10 deg), shift (+-8%) and zoom (+-10%) in one bilinear affine warp per face with reflected
borders, contrast (x0.8-1.2) and brightness (+-0.1), then random erasing. Augmentation works on
faces in [0, 1]; the bundle's :class:`~edge_fer.bundle.Preprocessing` (``scale``, ``offset``) maps the
result to the model's input range last.

Each batch draws from its own generator, seeded by (seed, epoch, batch index), so a batch is the
same whichever worker thread or process builds it, and in whatever order.
"""

from __future__ import annotations

import math
import os

import numpy as np

from edge_fer.bundle import Preprocessing

MAX_ROTATE = math.radians(10)
MAX_SHIFT = 0.08
MAX_ZOOM = 0.10
CONTRAST = (0.8, 1.2)
BRIGHTNESS = 0.1
ERASE_AREA = (0.04, 0.25)
ERASE_ASPECT = (0.5, 2.0)
ERASE_FILL = 0.5
# worker threads that build batches: 2 on a 2-core machine, half the cores (at most 8) on bigger ones
WORKERS = max(2, min(8, (os.cpu_count() or 2) // 2))


def affine_matrices(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """(n, 2, 3) output->input pixel maps: random flip, then rotation and zoom about the centre and a shift."""
    angle = rng.uniform(-MAX_ROTATE, MAX_ROTATE, n)
    zoom = rng.uniform(1.0 - MAX_ZOOM, 1.0 + MAX_ZOOM, n)
    tx = rng.uniform(-MAX_SHIFT, MAX_SHIFT, n) * w
    ty = rng.uniform(-MAX_SHIFT, MAX_SHIFT, n) * h
    flip = rng.random(n) < 0.5
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    m = np.empty((n, 2, 3), np.float64)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = cos, -sin, cx - cos * cx + sin * cy + tx
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = sin, cos, cy - sin * cx - cos * cy + ty
    # a flipped face reads column (w-1-x) of the original: negate the first row and move it back
    m[flip, 0, :] *= -1.0
    m[flip, 0, 2] += w - 1
    return m


def warp_faces(faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Faces (n, h, w) of any dtype after :func:`affine_matrices`' random flip, rotation, shift and zoom
    (bilinear, reflected borders): the geometric half of :func:`augment`."""
    import cv2

    n, h, w = faces.shape
    out = np.empty_like(faces)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for img, m, dst in zip(faces, affine_matrices(rng, n, h, w), out):
        cv2.warpAffine(img, m, (w, h), dst=dst, flags=flags, borderMode=cv2.BORDER_REFLECT)
    return out


def augment(images: np.ndarray, rng: np.random.Generator, geometric: bool = True) -> np.ndarray:
    """Face-suitable augmentation of float32 faces in [0, 1], (n, h, w): flip, rotation, shift, zoom,
    contrast and brightness, clipped to [0, 1]. No vertical flips: upside-down faces do not occur.
    ``geometric=False`` (faces warped already, :func:`warp_faces`): a random mirror in place of the warp."""
    n = len(images)
    if geometric:
        out = warp_faces(images, rng)
    else:
        flip = rng.random(n) < 0.5
        out = images.copy()
        out[flip] = out[flip, :, ::-1]
    mean = out.mean(axis=(1, 2), keepdims=True)
    contrast = rng.uniform(*CONTRAST, (n, 1, 1)).astype(np.float32)
    brightness = rng.uniform(-BRIGHTNESS, BRIGHTNESS, (n, 1, 1)).astype(np.float32)
    out -= mean
    out *= contrast
    out += mean + brightness
    return np.clip(out, 0.0, 1.0, out=out)


def erase(images: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Random erasing in place: with probability ``p`` per face, one rectangle (4-25% of the area,
    aspect 0.5-2) becomes mid grey, standing in for occlusions (hands, glasses, hair)."""
    n, h, w = images.shape
    area = rng.uniform(*ERASE_AREA, n) * h * w
    aspect = np.exp(rng.uniform(math.log(ERASE_ASPECT[0]), math.log(ERASE_ASPECT[1]), n))
    bh = np.minimum(np.sqrt(area * aspect), h)
    bw = np.minimum(np.sqrt(area / aspect), w)
    y0 = rng.random(n) * (h - bh)
    x0 = rng.random(n) * (w - bw)
    on = rng.random(n) < p
    rows = np.arange(h)
    cols = np.arange(w)
    r = (rows[None, :] >= y0[:, None]) & (rows[None, :] < (y0 + bh)[:, None])
    c = (cols[None, :] >= x0[:, None]) & (cols[None, :] < (x0 + bw)[:, None])
    mask = r[:, :, None] & c[:, None, :] & on[:, None, None]
    images[mask] = ERASE_FILL
    return images


class FaceBatches:
    """Indexable batches of uint8 (N, H, W[, 1]) faces; numpy only, so workers and tests need no Keras.

    ``autoencoder=True`` yields ``(image, image)`` pairs (the target is the augmented image itself).
    Otherwise ``(image, label[, weight])``, or the image alone without labels; ``one_hot=K`` turns
    labels into K-wide float32 rows (for label smoothing); ``y`` given as (N, K) float rows (soft targets,
    :mod:`edge_fer.train.distill`) is passed through as it is. ``erase`` is the random-erasing probability.
    ``copies=K`` (training): ``x``, ``y`` and ``sample_weight`` hold K warped copies of the same N faces,
    copy after copy (``x[k * N + i]`` is copy k of face i, :mod:`edge_fer.train.distill`'s consistent
    targets); an epoch shows each face once, as one of its copies drawn at random, and augments it without
    a second warp (mirror, contrast, brightness, erasing).
    ``multiple`` (``batch_size`` a multiple of it): the last batch too holds a multiple of that many
    faces, as JAX data parallel over that many devices needs. Training: up to ``multiple - 1`` faces,
    different each epoch, sit the epoch out. Evaluation with targets: every face is kept, the last
    batch is padded with copies of the first face at sample weight 0, and every batch carries weights.
    """

    def __init__(
        self,
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
        multiple: int = 1,
        copies: int = 1,
    ):
        prep = prep or Preprocessing()  # the bundle's preprocessing: the one source of scale/offset
        self.x = x[..., 0] if x.ndim == 4 else x
        self.y = None if autoencoder or y is None else np.asarray(y)
        self.weight = None if self.y is None or sample_weight is None else np.asarray(sample_weight)
        self.batch_size, self.training, self.seed = int(batch_size), training, seed
        self.autoencoder, self.scale, self.offset = autoencoder, float(prep.scale), float(prep.offset)
        self.erase, self.one_hot = (0.0 if autoencoder else float(erase)), one_hot
        self.epoch = 0
        self.copies = int(copies) if training else 1
        if len(self.x) % self.copies:
            raise ValueError(f"{len(self.x)} faces are not {self.copies} copies of the same faces")
        self.faces = len(self.x) // self.copies
        # training: each epoch's last batch is cut to a multiple of ``multiple`` (data-parallel devices)
        self.size = self.faces - (self.faces % self.batch_size) % multiple if training else len(self.x)
        # evaluation: faces of weight 0 that fill the last batch up to the multiple (needs targets)
        has_target = autoencoder or self.y is not None
        self.pad = 0 if training or not has_target else -(len(self.x) % self.batch_size) % multiple
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray | None:
        if not self.training:
            return None
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.faces)[: self.size]
        if self.copies > 1:  # which copy of each face this epoch shows
            order = order + rng.integers(0, self.copies, len(order)) * self.faces
        return order

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._epoch_order()

    def indices(self, index: int) -> slice | np.ndarray:
        """The faces of batch ``index``: a slice in order, or this epoch's shuffled draw (sorted, for
        cache-friendly gathering; the order inside a batch does not matter); the padding last."""
        sl = slice(index * self.batch_size, (index + 1) * self.batch_size)
        if self._order is not None:
            return np.sort(self._order[sl])
        if self.pad and index == len(self) - 1:
            return np.concatenate([np.arange(len(self.x))[sl], np.zeros(self.pad, np.int64)])
        return sl

    def images(self, index: int, idx: slice | np.ndarray) -> np.ndarray:
        """Faces ``idx`` (batch ``index``) as float32 (n, H, W, 1) model inputs."""
        faces = self.x[idx]
        if not self.training:
            return (faces.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset))[..., None]
        rng = np.random.default_rng([self.seed + 1, self.epoch, index])
        img = augment(faces.astype(np.float32) * np.float32(1.0 / 255.0), rng, geometric=self.copies == 1)
        if self.erase > 0:
            img = erase(img, rng, self.erase)
        if self.scale * 255.0 != 1.0 or self.offset:
            img = img * np.float32(self.scale * 255.0) + np.float32(self.offset)
        return img[..., None]

    def __getitem__(self, index: int):
        if index < 0 or index >= len(self):
            raise IndexError(index)
        idx = self.indices(index)
        img = self.images(index, idx)
        weight = self._weights(index, idx, len(img))
        if self.autoencoder:
            return (img, img) if weight is None else (img, img, weight)
        if self.y is None:
            return img
        labels = self.y[idx]
        if self.one_hot and labels.ndim == 1:
            labels = np.eye(self.one_hot, dtype=np.float32)[labels]
        return (img, labels) if weight is None else (img, labels, weight)

    def _weights(self, index: int, idx: slice | np.ndarray, n: int) -> np.ndarray | None:
        if not self.pad:
            return None if self.weight is None else self.weight[idx]
        w = np.ones(n, np.float32) if self.weight is None else self.weight[idx].astype(np.float32)
        if index == len(self) - 1:
            w[-self.pad :] = 0.0
        return w


def _pydataset_class():
    """``FacePyDataset``: FaceBatches as a ``keras.utils.PyDataset``, made on first use so that importing
    this module does not import Keras (which fixes the backend). A module attribute, so worker
    processes unpickle it by name."""
    cls = globals().get("FacePyDataset")
    if cls is None:
        import keras

        class FacePyDataset(keras.utils.PyDataset):
            def __init__(self, batches: FaceBatches, **kwargs):
                super().__init__(**kwargs)
                self.batches = batches

            def __len__(self) -> int:
                return len(self.batches)

            def __getitem__(self, index: int):
                return self.batches[index]

            def on_epoch_end(self) -> None:
                self.batches.on_epoch_end()

        FacePyDataset.__module__, FacePyDataset.__qualname__ = __name__, "FacePyDataset"
        globals()["FacePyDataset"] = cls = FacePyDataset
    return cls


def __getattr__(name: str):
    if name == "FacePyDataset":
        return _pydataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    multiple: int = 1,
    copies: int = 1,
    workers: int | None = None,
    use_multiprocessing: bool = False,
    max_queue_size: int = 8,
):
    """uint8 (N, H, W) faces -> a ``keras.utils.PyDataset`` of float batches, with the arguments and
    batches of the tf.data ``make_dataset`` (see :class:`FaceBatches`), for ``model.fit`` on any backend.
    ``workers`` threads (or processes; default :data:`WORKERS`) build batches ahead of the training step;
    OpenCV and numpy release the GIL, so threads overlap with the step."""
    batches = FaceBatches(
        x,
        y,
        batch_size=batch_size,
        training=training,
        seed=seed,
        sample_weight=sample_weight,
        autoencoder=autoencoder,
        prep=prep,
        erase=erase,
        one_hot=one_hot,
        multiple=multiple,
        copies=copies,
    )
    return _pydataset_class()(
        batches, workers=workers or WORKERS, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
    )


def class_weights(y: np.ndarray, num_classes: int, power: float = 0.5) -> np.ndarray:
    """Inverse-frequency class weights softened by ``power`` (0.5 = square root), mean 1 over samples.
    FER2013's 'disgust' has 16x fewer images than 'happy'; full inverse weights over-predict it."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    w /= w[y].mean() if len(y) else 1.0
    return w.astype(np.float32)
