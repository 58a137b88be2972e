"""Labelled face crops for calibration and evaluation, and the class-stratified calibration sample.

Sources, in the order ``edge-fer convert`` looks at them:

- a dataset path that :func:`edge_fer.train.data.load_dataset` reads (FER2013 CSV, image folders,
  ``.zip``): calibration takes its ``train`` split; evaluation its ``test`` split (PrivateTest for
  FER2013), or ``val`` when there is no ``test`` split (noted in the report). Evaluation also takes a
  held-out set without training images, as ``edge-fer eval`` does (``<class>/PrivateTest_*.jpg``);
- a ``.npz`` file with ``x`` (uint8, ``(N, H, W)`` or ``(N, H, W, 1)``) and ``y`` (int, ``(N,)``),
  optionally ``labels``: used whole, for either role (handy for CI and for already-cropped faces).

Calibration never uses synthetic data: an empty or unreadable set is a :class:`DataError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edge_fer.train.data import FaceDataset, load_dataset

from edge_fer.bundle import Preprocessing
from edge_fer.errors import DataError, EdgeFerError

log = logging.getLogger(__name__)


@dataclass
class LabeledImages:
    """Grayscale uint8 crops ``x`` (N, H, W) with int64 labels ``y`` (N,)."""

    x: np.ndarray
    y: np.ndarray
    source: str
    split: str
    labels: tuple[str, ...] | None = None
    note: str | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "split": self.split, "n": len(self)}
        if self.note:
            d["note"] = self.note
        return d


def _check_arrays(
    x: np.ndarray, y: np.ndarray, source: str, image_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise DataError(f"{source}: expected images of shape (N, H, W), got {x.shape}")
    if x.shape[0] != y.shape[0] or y.ndim != 1:
        raise DataError(f"{source}: {x.shape[0]} images but labels of shape {y.shape}")
    if tuple(x.shape[1:3]) != tuple(image_hw):
        raise DataError(f"{source}: images are {x.shape[1]}x{x.shape[2]}, the model takes {image_hw[0]}x{image_hw[1]}")
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating) or x.min() < 0 or x.max() > 255:
            raise DataError(f"{source}: images must be uint8 pixels 0..255, got {x.dtype}")
        x = x.astype(np.uint8)
    return x, y.astype(np.int64)


def _load_npz(path: Path, image_hw: tuple[int, int]) -> LabeledImages:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise DataError(f"{path}: a .npz data file needs arrays 'x' and 'y' (has {sorted(z.files)})")
            x, y = z["x"], z["y"]
            labels = tuple(str(s) for s in z["labels"]) if "labels" in z else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    x, y = _check_arrays(x, y, str(path), image_hw)
    return LabeledImages(x, y, str(path), "all", labels)


def _load_with_trainer(
    path: Path,
    image_hw: tuple[int, int],
    seed: int,
    val_fraction: float | None,
    class_map: Any = None,
    require_train: bool = True,
) -> FaceDataset:
    kwargs: dict[str, Any] = {"seed": seed, "image_size": image_hw[0], "require_train": require_train}
    if val_fraction is not None:
        kwargs["val_fraction"] = val_fraction
    if class_map:
        kwargs["class_map"] = class_map
    try:
        return load_dataset(str(path), **kwargs)
    except EdgeFerError:
        raise
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise DataError(f"cannot read dataset {path}: {e}") from None


def load_labeled(
    path: str | Path,
    role: str,
    image_hw: tuple[int, int],
    seed: int = 0,
    val_fraction: float | None = None,
    cache: dict | None = None,
    class_map: Any = None,
    split: str = "test",
    flag: str | None = None,
) -> LabeledImages:
    """The crops for ``role`` ('calibration', 'evaluation' or 'validation') from ``path``; ``split``
    'val' makes evaluation take the validation split (the selection split) instead of the test split.
    ``flag``: the option that named ``path`` (``--eval-data``), which every error then names."""
    try:
        return _load_labeled(path, role, image_hw, seed, val_fraction, cache, class_map, split)
    except DataError as e:
        if flag is None or str(e).startswith(flag):
            raise
        raise DataError(f"{flag}: {e}") from None


def _load_labeled(
    path: str | Path,
    role: str,
    image_hw: tuple[int, int],
    seed: int,
    val_fraction: float | None,
    cache: dict | None,
    class_map: Any,
    split: str,
) -> LabeledImages:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{role} data {p} does not exist")
    if p.suffix.lower() == ".npz":
        data = _load_npz(p, image_hw)
    else:
        require_train = role == "calibration"  # a held-out set (evaluation) may have no training images
        ckey = (str(p.resolve()), image_hw, seed, val_fraction, repr(class_map), require_train)
        if cache is not None and ckey in cache:
            ds = cache[ckey]
        else:
            ds = _load_with_trainer(p, image_hw, seed, val_fraction, class_map, require_train)
            if cache is not None:
                cache[ckey] = ds
        splits = ds.splits
        note = None
        if role == "calibration":
            key = "train"
        elif role == "validation" and "val" in splits:  # the quality gate's threshold (FER2013: PublicTest)
            key = "val"
        elif role == "evaluation" and split == "val":  # convert --eval-split val: selection without the test split
            key = "val"
        elif "test" in splits:
            key = "test"
        else:
            key = "val"
            note = "dataset has no test split; evaluated on its validation split"
        if key not in splits or splits[key] is None:
            raise DataError(f"{role} data {p}: no '{key}' split (has {sorted(splits)})")
        s = splits[key]
        x, y = _check_arrays(s.x, s.y, str(p), image_hw)
        data = LabeledImages(x, y, str(p), s.name or key, tuple(ds.labels) or None, note)
    if len(data) == 0:
        raise DataError(f"{role} data {p} ({data.split}) is empty")
    return data


def check_labels(data: LabeledImages, labels: tuple[str, ...], flag: str | None = None) -> None:
    """The data's label ids must mean what the model's outputs mean; ``flag`` as in :func:`load_labeled`."""
    try:
        _check_labels(data, labels)
    except DataError as e:
        if flag is None:
            raise
        raise DataError(f"{flag}: {e}") from None


def _check_labels(data: LabeledImages, labels: tuple[str, ...]) -> None:
    if data.labels is not None and tuple(data.labels) != tuple(labels):
        raise DataError(f"{data.source}: labels {list(data.labels)} differ from the model's {list(labels)}")
    bad = (data.y < 0) | (data.y >= len(labels))
    if bad.any():
        raise DataError(f"{data.source}: label ids must be in 0..{len(labels) - 1}, found {int(data.y[bad][0])}")


def stratified_sample(y: np.ndarray, n: int, seed: int, num_classes: int) -> np.ndarray:
    """Indices of a seeded sample of ``n`` items spread as evenly as possible over the classes.

    Every class gets an equal share; a class with fewer items gives all it has and the rest is
    shared among the others. Rare classes (FER2013's *disgust*) are thus represented too.
    """
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(y == c)) for c in range(num_classes)]
    n = min(int(n), int(sum(len(p) for p in pools)))
    take = [0] * num_classes
    left = n
    while left > 0:
        open_ = [c for c in range(num_classes) if take[c] < len(pools[c])]
        share, extra = divmod(left, len(open_))
        for i, c in enumerate(open_):
            add = min(share + (1 if i < extra else 0), len(pools[c]) - take[c])
            take[c] += add
            left -= add
    idx = np.concatenate([pools[c][: take[c]] for c in range(num_classes)]).astype(np.int64)
    return rng.permutation(idx)


def float_model_input(x: np.ndarray, prep: Preprocessing, channels: int, field: bool = True) -> np.ndarray:
    """uint8 crops (N, H, W) -> the float32 model input (N, H, W, C) = pixel * scale + offset, before
    any quantization (the Keras model's input; :func:`edge_fer.preprocess.to_model_input` gives the
    quantized input of a bundle).

    ``field=True`` treats the crops as real-world faces and applies the bundle's ``blur_sigma`` as the
    runtime does; ``field=False`` is for the training faces themselves (calibration), which already
    have the training distribution's sharpness."""
    from edge_fer.preprocess import blur, normalize

    f = normalize(blur(x, prep.blur_sigma) if field else x, prep.scale, prep.offset)[..., None]
    if channels == 3:
        f = np.repeat(f, 3, axis=-1)
    return np.ascontiguousarray(f, dtype=np.float32)
