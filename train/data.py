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

import csv
import io
import logging
import os
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from edge_fer.errors import DataError
from edge_fer.labels import LABEL_TO_ID, LABELS

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".webp", ".tif", ".tiff")
CSV_COLUMNS = ("emotion", "pixels", "Usage")

# Folder names people use for the 7 FER expressions (lower-case). Extend with --class-map.
CLASS_ALIASES: dict[str, str] = {
    **{name: name for name in LABELS},
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgusted": "disgust",  # 'contempt' is its own expression (CK+, AffectNet): not mapped
    "fearful": "fear", "scared": "fear", "afraid": "fear",
    "happiness": "happy", "joy": "happy", "smile": "happy",
    "sadness": "sad", "unhappy": "sad",
    "surprised": "surprise",
    "neutrality": "neutral", "calm": "neutral",
}
# FER2013 CSV "Usage" values and image-file prefixes -> our split names.
FER_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLIT_DIRS = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
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
class LoadReport:
    """What loading found: skipped files are counted and named, never a crash."""

    source: str
    kind: str = ""
    loaded: int = 0
    corrupt: int = 0
    corrupt_examples: list[str] = field(default_factory=list)
    unknown_classes: dict[str, int] = field(default_factory=dict)
    empty_classes: list[str] = field(default_factory=list)
    ignored_files: int = 0

    def add_corrupt(self, name: str) -> None:
        self.corrupt += 1
        if len(self.corrupt_examples) < 10:
            self.corrupt_examples.append(name)

    def lines(self) -> list[str]:
        out = [f"{self.source}: {self.loaded} faces loaded ({self.kind})"]
        if self.corrupt:
            ex = ", ".join(self.corrupt_examples[:3])
            out.append(f"skipped {self.corrupt} unreadable/corrupt image(s), e.g. {ex}")
        if self.unknown_classes:
            desc = ", ".join(f"{k!r} ({v} files)" for k, v in sorted(self.unknown_classes.items()))
            out.append(f"ignored unknown class folder(s) {desc}; map them with --class-map NAME=LABEL")
        if self.empty_classes:
            out.append(f"no images for class(es): {', '.join(self.empty_classes)}")
        if self.ignored_files:
            out.append(f"ignored {self.ignored_files} non-image file(s)")
        return out

    def to_dict(self) -> dict:
        return {
            "source": self.source, "kind": self.kind, "loaded": self.loaded, "corrupt": self.corrupt,
            "corrupt_examples": self.corrupt_examples, "unknown_classes": self.unknown_classes,
            "empty_classes": self.empty_classes, "ignored_files": self.ignored_files,
        }


@dataclass
class FaceDataset:
    splits: dict[str, Split]
    report: LoadReport
    labels: tuple[str, ...] = LABELS
    image_size: int = 48

    @property
    def is_fer2013(self) -> bool:
        return self.splits.get("val") is not None and self.splits["val"].name == "PublicTest"


# --- decoding -------------------------------------------------------------------------------------


def decode_gray(data: bytes, size: int | None) -> np.ndarray | None:
    """JPEG/PNG bytes -> (size, size) uint8 grayscale (``size`` None: as stored), or None when the
    image is unreadable."""
    import cv2

    if not data:
        return None
    from edge_fer.imageio import DEFAULT_MAX_PIXELS, image_size

    dims = image_size(data)  # the header only: a small file can declare gigapixels
    if dims is not None and dims[0] * dims[1] > DEFAULT_MAX_PIXELS:
        log.warning("an image of %dx%d pixels is above the %d-pixel limit: not decoded, counted as unreadable",
                    dims[0], dims[1], DEFAULT_MAX_PIXELS)
        return None
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None or img.size == 0:
        return None
    if size and img.shape != (size, size):
        interp = cv2.INTER_AREA if min(img.shape) >= size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return img


# --- CSV (the original fer2013.csv) ---------------------------------------------------------------


def _read_csv(stream: Iterable[str], source: str, size: int | None, report: LoadReport) -> dict[str, tuple[list, list]]:
    size = size or 48  # the CSV's pixel rows are 48x48
    reader = csv.reader(stream)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{source}: empty CSV; expected columns {','.join(CSV_COLUMNS)}") from None
    if "emotion" not in header or "pixels" not in header:
        raise DataError(
            f"{source}: line 1: expected columns {','.join(CSV_COLUMNS)} "
            f"(Usage optional), found {','.join(header) or 'nothing'}"
        )
    i_em, i_px = header.index("emotion"), header.index("pixels")
    i_us = header.index("Usage") if "Usage" in header else None
    npx = size * size
    out: dict[str, tuple[list, list]] = {}
    rows = _csv_rows(reader, source)
    for lineno, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise DataError(f"{source}: line {lineno}: {len(row)} field(s), expected {len(header)} ({','.join(header)})")
        try:
            label = int(row[i_em])
        except ValueError:
            raise DataError(f"{source}: line {lineno}: emotion {row[i_em]!r} is not an integer 0-6") from None
        if not 0 <= label < len(LABELS):
            raise DataError(f"{source}: line {lineno}: emotion {label} out of range 0-{len(LABELS) - 1}")
        try:
            px = np.array(row[i_px].split(), dtype=np.int64)
        except (ValueError, OverflowError):
            raise DataError(f"{source}: line {lineno}: pixels must be space-separated integers 0-255") from None
        if px.size != npx:
            raise DataError(f"{source}: line {lineno}: {px.size} pixels, expected {npx} ({size}x{size})")
        if px.min() < 0 or px.max() > 255:
            raise DataError(f"{source}: line {lineno}: pixel values must be 0-255")
        usage = row[i_us].strip() if i_us is not None else "Training"
        split = FER_SPLITS.get(usage)
        if split is None:
            raise DataError(f"{source}: line {lineno}: Usage {usage!r} is not one of {', '.join(FER_SPLITS)}")
        xs, ys = out.setdefault(split, ([], []))
        xs.append(px.astype(np.uint8).reshape(size, size))
        ys.append(label)
        report.loaded += 1
    if report.loaded == 0:
        raise DataError(f"{source}: CSV has a header but no rows")
    return out


def _csv_rows(reader, source: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, row) pairs; a malformed CSV line (a field over the csv module's size limit, a
    stray NUL, an unclosed quote) is a DataError naming the line, not a csv.Error traceback."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(f"{source}: line {reader.line_num}: malformed CSV ({e})") from None
        yield reader.line_num, row


# --- image folders (plain or zipped) -------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    parts: tuple[str, ...]  # path parts relative to the dataset root
    read: object  # () -> bytes


def _iter_dir(root: Path) -> Iterator[_Entry]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root).parts
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            p = Path(dirpath) / fn
            yield _Entry(rel + (fn,), p.read_bytes)


def _iter_zip(zf: zipfile.ZipFile) -> Iterator[_Entry]:
    for info in zf.infolist():
        if info.is_dir():
            continue
        parts = PurePosixPath(info.filename).parts
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        yield _Entry(parts, lambda info=info: zf.read(info))


def _strip_common_root(entries: list[_Entry]) -> list[_Entry]:
    """``fer2013/train/happy/x.jpg`` -> ``train/happy/x.jpg`` when everything sits in one folder."""
    while entries and all(len(e.parts) > 2 for e in entries):
        first = entries[0].parts[0]
        if all(e.parts[0] == first for e in entries) and first.lower() not in SPLIT_DIRS:
            entries = [_Entry(e.parts[1:], e.read) for e in entries]
        else:
            break
    return entries


def _split_of(parts: tuple[str, ...]) -> str | None:
    """The split named by a file's folder / FER2013 file prefix; None when the layout has none."""
    fn = parts[-1]
    m = re.match(r"(Training|PublicTest|PrivateTest)_", fn)
    if m:
        return FER_SPLITS[m.group(1)]
    if len(parts) >= 3:
        return SPLIT_DIRS.get(parts[-3].lower())
    return None


def _read_folders(entries: list[_Entry], source: str, size: int | None, class_map: dict[str, str],
                  report: LoadReport, only: str | None = None) -> dict[str, tuple[list, list]]:
    entries = _strip_common_root(entries)
    out: dict[str, tuple[list, list]] = {}
    seen_classes: Counter[str] = Counter()
    fer_named = 0
    for e in entries:
        if len(e.parts) < 2:
            if e.parts and e.parts[-1].lower().endswith(IMAGE_EXTS):
                report.unknown_classes["(top level)"] = report.unknown_classes.get("(top level)", 0) + 1
            else:
                report.ignored_files += 1
            continue
        if not e.parts[-1].lower().endswith(IMAGE_EXTS):
            report.ignored_files += 1
            continue
        folder = e.parts[-2]
        label = class_map.get(folder.lower())
        if label is None:
            report.unknown_classes[folder] = report.unknown_classes.get(folder, 0) + 1
            continue
        split = _split_of(e.parts) or "all"
        if only is not None and split != only:
            continue
        seen_classes[label] += 1
        try:
            img = decode_gray(e.read(), size)  # type: ignore[operator]
        except (OSError, zipfile.BadZipFile, ValueError) as err:
            log.debug("cannot read %s: %s", "/".join(e.parts), err)
            img = None
        if img is None:
            report.add_corrupt("/".join(e.parts))
            continue
        fer_named += e.parts[-1].startswith(("Training_", "PublicTest_", "PrivateTest_"))
        xs, ys = out.setdefault(split, ([], []))
        xs.append(img)
        ys.append(LABEL_TO_ID[label])
        report.loaded += 1
    report.empty_classes = [name for name in LABELS if seen_classes[name] == 0]
    if report.loaded == 0:
        hint = ""
        if report.unknown_classes:
            hint = f"; class folders found: {', '.join(sorted(report.unknown_classes))} (map them with --class-map)"
        raise DataError(f"{source}: no readable face images in <class>/ folders{hint}")
    if fer_named:
        report.kind += ", FER2013 layout"
    return out


# --- public API ----------------------------------------------------------------------------------


def parse_class_map(items: Iterable[str] | dict[str, str] | None) -> dict[str, str]:
    """``["happiness=happy", ...]`` (or a dict) merged over the built-in aliases, keys lower-case."""
    m = dict(CLASS_ALIASES)
    if not items:
        return m
    pairs = items.items() if isinstance(items, dict) else (s.split("=", 1) if "=" in s else (s, "") for s in items)
    for folder, label in pairs:
        folder, label = folder.strip().lower(), label.strip().lower()
        if label not in LABEL_TO_ID:
            raise DataError(f"class map: {folder!r} -> {label!r}: the label must be one of {', '.join(LABELS)}")
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


def _read_any(path: str | Path, image_size: int | None, class_map,
              only: str | None = None) -> tuple[dict[str, tuple[list, list]], LoadReport, str]:
    """Every labeled face of a FER2013 CSV/zip/folder or a <class>/ image folder, by split name
    ('train', 'val', 'test', or 'all' for a layout without splits)."""
    p = Path(path)
    source = str(p)
    report = LoadReport(source)
    cmap = parse_class_map(class_map)
    if not p.exists():
        raise DataError(f"{source}: no such file or directory")
    try:
        if p.is_file() and p.suffix.lower() == ".csv":
            report.kind = "FER2013 CSV"
            with open(p, newline="", encoding="utf-8") as f:
                raw = _read_csv(f, source, image_size, report)
        elif p.is_file() and zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                csvs = [n for n in zf.namelist() if n.lower().endswith(".csv") and not n.startswith("__MACOSX")]
                if csvs:
                    report.kind = "FER2013 CSV in zip"
                    with zf.open(csvs[0]) as f:
                        raw = _read_csv(io.TextIOWrapper(f, encoding="utf-8", newline=""), f"{source}:{csvs[0]}",
                                        image_size, report)
                else:
                    report.kind = "image folders in zip"
                    raw = _read_folders(list(_iter_zip(zf)), source, image_size, cmap, report, only)
        elif p.is_dir():
            csvs = sorted(p.glob("*.csv"))
            if csvs:
                report.kind = "FER2013 CSV"
                with open(csvs[0], newline="", encoding="utf-8") as f:
                    raw = _read_csv(f, str(csvs[0]), image_size, report)
            else:
                report.kind = "image folders"
                raw = _read_folders(list(_iter_dir(p)), source, image_size, cmap, report, only)
        elif p.is_file():
            raise DataError(f"{source}: not a dataset (expected a FER2013 .csv, a .zip, or a folder of <class>/ images)")
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
    "privatetest": "test", "test": "test", "publictest": "val", "val": "val", "validation": "val",
    "training": "train", "train": "train", "all": "all",
}


@dataclass
class LabeledImages:
    """Labeled faces at their stored resolution (grayscale uint8, any size) from one split."""

    images: list[np.ndarray]
    y: np.ndarray
    split: str
    report: LoadReport


def load_labeled_images(path: str | os.PathLike, split: str | None = None,
                        class_map: Iterable[str] | dict[str, str] | None = None) -> LabeledImages:
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
            raise DataError(f"{source}: no {split or 'test'} split (splits found: {have})")
        xs, ys = raw[key]
        fer = "FER2013" in report.kind
        name = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}[key] if fer else key
    if not xs:
        raise DataError(f"{source}: no readable labeled faces in the {split or 'test'} split")
    return LabeledImages(list(xs), np.asarray(ys, dtype=np.int64), name, report)


def load_dataset(path: str | os.PathLike, val_fraction: float = 0.1, seed: int = 0, image_size: int = 48,
                 class_map: Iterable[str] | dict[str, str] | None = None) -> FaceDataset:
    """Read a FER2013 CSV, an image-folder dataset, or a .zip of either.

    Raises :class:`DataError` with a one-line reason for anything it cannot use.
    """
    raw, report, source = _read_any(path, image_size, class_map)
    def to_split(name: str, xs: list, ys: list) -> Split:
        return Split(name, np.stack(xs).astype(np.uint8), np.asarray(ys, dtype=np.int64))

    fer = "FER2013" in report.kind
    names = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"} if fer else \
        {"train": "train", "val": "val", "test": "test"}
    if "all" in raw:  # a plain <class>/ layout: everything is training data
        xs, ys = raw.pop("all")
        tx, ty = raw.setdefault("train", ([], []))
        tx.extend(xs)
        ty.extend(ys)
    if "train" not in raw:
        raise DataError(f"{source}: no training images found (expected a train/ folder or Usage=Training rows)")
    splits = {k: to_split(names[k], *raw[k]) for k in raw}
    present = sorted(set(int(v) for v in splits["train"].y))
    if len(present) < 2:
        only = LABELS[present[0]] if present else "none"
        raise DataError(f"{source}: the training images hold a single class ({only}); a classifier needs at least 2")
    if "val" not in splits:
        keep, held = stratified_split(splits["train"].y, val_fraction, seed)
        tr = splits["train"]
        splits["val"] = Split("val", tr.x[held], tr.y[held])
        splits["train"] = Split(tr.name, tr.x[keep], tr.y[keep])
        log.info("no validation split in %s: held out a stratified %.0f%% (seed %d)", source, val_fraction * 100, seed)
    for line in report.lines():
        log.info("%s", line)
    return FaceDataset(splits=splits, report=report, image_size=image_size)
