"""Face-expression datasets: FER2013 (CSV or image folders, from a folder or a .zip) and any
image-folder dataset whose class names map onto the 7 FER labels.

Everything is decoded once into uint8 arrays (35,887 FER2013 faces are 83 MB) so the training
input pipeline never touches JPEG again. Needs only numpy and OpenCV (no TensorFlow), so the
converter and tests can use it too.

Splits follow the FER2013 protocol: ``train`` = Training, ``val`` = PublicTest (model selection),
``test`` = PrivateTest (final report only). A dataset without a validation split gets a
stratified, seeded one carved out of its training images.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from edge_fer.train.fer_csv import CSV_COLUMNS, read_csv
from edge_fer.train.image_folders import iter_dir, iter_zip, read_folders
from edge_fer.train.load_report import LoadReport

from edge_fer.errors import DataError
from edge_fer.labels import LABEL_TO_ID, LABELS

log = logging.getLogger(__name__)

# Folder names people use for the 7 FER expressions (lower-case). Extend with --class-map.
CLASS_ALIASES: dict[str, str] = {
    **{name: name for name in LABELS},
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgusted": "disgust",  # 'contempt' is its own expression (CK+, AffectNet): not mapped
    "fearful": "fear",
    "scared": "fear",
    "afraid": "fear",
    "happiness": "happy",
    "joy": "happy",
    "smile": "happy",
    "sadness": "sad",
    "unhappy": "sad",
    "surprised": "surprise",
    "neutrality": "neutral",
    "calm": "neutral",
}


@dataclass
class Split:
    """One split of a dataset: ``x`` uint8 (N, S, S) grayscale faces, ``y`` int64 (N,) label ids."""

    name: str
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def class_counts(self, num_classes: int = len(LABELS)) -> list[int]:
        return np.bincount(self.y, minlength=num_classes).tolist()


@dataclass
class FaceDataset:
    splits: dict[str, Split]
    report: LoadReport
    labels: tuple[str, ...] = LABELS
    image_size: int = 48


def parse_class_map(items: Iterable[str] | dict[str, str] | None) -> dict[str, str]:
    """``["happiness=happy", ...]`` (or a dict) merged over the built-in aliases, keys lower-case."""
    return {**CLASS_ALIASES, **user_class_map(items)}


def user_class_map(items: Iterable[str] | dict[str, str] | None) -> dict[str, str]:
    """The user's own ``FOLDER=LABEL`` pairs, keys lower-case: a pair without a folder or with an
    unknown label, and a folder mapped twice to different labels, are one-line errors."""
    m: dict[str, str] = {}
    if not items:
        return m
    pairs = items.items() if isinstance(items, dict) else (s.split("=", 1) if "=" in s else (s, "") for s in items)
    for folder, label in pairs:
        folder, label = folder.strip().lower(), label.strip().lower()
        if not folder:
            raise DataError(f"--class-map ={label}: no folder name before '=' (want FOLDER=LABEL)")
        if label not in LABEL_TO_ID:
            raise DataError(f"--class-map {folder}={label}: the label must be one of {', '.join(LABELS)}")
        if m.get(folder, label) != label:
            raise DataError(f"--class-map maps {folder!r} twice: to {m[folder]} and to {label}")
        m[folder] = label
    return m


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``fraction`` of every class held out, seeded."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)
        else:
            n = 0
        held.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _read_any(
    path: str | Path, image_size: int | None, class_map, only: str | None = None
) -> tuple[dict[str, tuple[list, list]], LoadReport, str]:
    """Every labeled face of a FER2013 CSV/zip/folder or a <class>/ image folder, by split name
    ('train', 'val', 'test', or 'all' for a layout without splits)."""
    p = Path(path)
    source = str(p)
    report = LoadReport(source)
    asked = frozenset(user_class_map(class_map))
    cmap = parse_class_map(class_map)
    if not p.exists():
        raise DataError(f"{source}: no such file or directory")
    try:
        if p.is_file() and p.suffix.lower() == ".csv":
            report.kind = "FER2013 CSV"
            with open(p, newline="", encoding="utf-8") as f:
                raw = read_csv(f, source, image_size, report)
        elif p.is_file() and zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                csvs = [n for n in zf.namelist() if n.lower().endswith(".csv") and not n.startswith("__MACOSX")]
                if csvs:
                    report.kind = "FER2013 CSV in zip"
                    with zf.open(csvs[0]) as f:
                        raw = read_csv(
                            io.TextIOWrapper(f, encoding="utf-8", newline=""), f"{source}:{csvs[0]}", image_size, report
                        )
                else:
                    report.kind = "image folders in zip"
                    raw = read_folders(list(iter_zip(zf)), source, image_size, cmap, report, only, asked)
        elif p.is_dir():
            csvs = sorted(p.glob("*.csv"))
            if csvs:
                report.kind = "FER2013 CSV"
                with open(csvs[0], newline="", encoding="utf-8") as f:
                    raw = read_csv(f, str(csvs[0]), image_size, report)
            else:
                report.kind = "image folders"
                raw = read_folders(list(iter_dir(p)), source, image_size, cmap, report, only, asked)
        elif p.is_file():
            raise DataError(
                f"{source}: not a dataset (expected a FER2013 .csv, a .zip, or a folder of <class>/ images)"
            )
        else:
            raise DataError(f"{source}: not a regular file or folder")
    except zipfile.BadZipFile as e:
        raise DataError(f"{source}: corrupt zip file ({e})") from None
    except UnicodeDecodeError:
        raise DataError(f"{source}: not a text CSV (expected columns {','.join(CSV_COLUMNS)})") from None
    except OSError as e:
        raise DataError(f"{source}: cannot read ({e.strerror or e})") from None

    return raw, report, source


# split names a user may give (``--split``) -> the internal key
SPLIT_NAMES = {
    "privatetest": "test",
    "test": "test",
    "publictest": "val",
    "val": "val",
    "validation": "val",
    "training": "train",
    "train": "train",
    "all": "all",
}


@dataclass
class LabeledImages:
    """Labeled faces at their stored resolution (grayscale uint8, any size) from one split."""

    images: list[np.ndarray]
    y: np.ndarray
    split: str
    report: LoadReport


def load_labeled_images(
    path: str | os.PathLike, split: str | None = None, class_map: Iterable[str] | dict[str, str] | None = None
) -> LabeledImages:
    """The faces of one split, undecimated (for evaluation through the runtime's own resize and
    detector). ``split`` None: the test split (FER2013 PrivateTest), else everything of a dataset
    without splits. Unknown class folders and unreadable images are counted in the report."""
    key = None
    if split is not None:
        key = SPLIT_NAMES.get(split.strip().lower())
        if key is None:
            raise DataError(f"--split {split!r}: choose PrivateTest, PublicTest, Training, test, val, train or all")
    only = key if key not in (None, "all") else None
    raw, report, source = _read_any(path, None, class_map, only=only)
    if key is None:
        key = "test" if "test" in raw else ("all" if "all" in raw else None)
    if key == "all":
        xs, ys = [], []
        for k in sorted(raw):
            xs += raw[k][0]
            ys += raw[k][1]
        name = "all"
    else:
        if key not in raw:
            have = ", ".join(sorted(raw)) or "none"
            names = {"train": "train (Training_*)", "val": "val (PublicTest_*)", "test": "test (PrivateTest_*)"}
            found = ", ".join(names.get(k, k) for k in sorted(raw)) or "none"
            hint = f"; choose one with --split ({have}) or all of them with --split all" if raw else ""
            raise DataError(f"{source}: no {split or 'test'} split (splits found: {found}){hint}")
        xs, ys = raw[key]
        fer = "FER2013" in report.kind
        name = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}[key] if fer else key
    if not xs:
        raise DataError(f"{source}: no readable labeled faces in the {split or 'test'} split")
    return LabeledImages(list(xs), np.asarray(ys, dtype=np.int64), name, report)


def load_dataset(
    path: str | os.PathLike,
    val_fraction: float = 0.1,
    seed: int = 0,
    image_size: int = 48,
    class_map: Iterable[str] | dict[str, str] | None = None,
    require_train: bool = True,
) -> FaceDataset:
    """Read a FER2013 CSV, an image-folder dataset, or a .zip of either.

    ``require_train=False`` also takes a held-out set without training images (FER2013
    ``<class>/PrivateTest_*.jpg``, a ``test/`` folder: what ``edge-fer eval`` reads), with the splits it
    has, none carved out. Raises :class:`DataError` with a one-line reason for anything it cannot use.
    """
    raw, report, source = _read_any(path, image_size, class_map)

    def to_split(name: str, xs: list, ys: list) -> Split:
        return Split(name, np.stack(xs).astype(np.uint8), np.asarray(ys, dtype=np.int64))

    fer = "FER2013" in report.kind
    names = (
        {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
        if fer
        else {"train": "train", "val": "val", "test": "test"}
    )
    if "all" in raw:  # a plain <class>/ layout: everything is training data
        xs, ys = raw.pop("all")
        tx, ty = raw.setdefault("train", ([], []))
        tx.extend(xs)
        ty.extend(ys)
    if "train" not in raw and (require_train or not raw):
        raise DataError(f"{source}: no training images found (expected a train/ folder or Usage=Training rows)")
    splits = {k: to_split(names[k], *raw[k]) for k in raw}
    if "train" in splits:
        present = sorted(set(int(v) for v in splits["train"].y))
        if len(present) < 2:
            only = LABELS[present[0]] if present else "none"
            raise DataError(
                f"{source}: the training images hold a single class ({only}); a classifier needs at least 2"
            )
        if "val" not in splits:
            keep, held = stratified_split(splits["train"].y, val_fraction, seed)
            tr = splits["train"]
            splits["val"] = Split("val", tr.x[held], tr.y[held])
            splits["train"] = Split(tr.name, tr.x[keep], tr.y[keep])
            log.info(
                "no validation split in %s: held out a stratified %.0f%% (seed %d)", source, val_fraction * 100, seed
            )
    for line in report.lines():
        log.info("%s", line)
    return FaceDataset(splits=splits, report=report, image_size=image_size)
