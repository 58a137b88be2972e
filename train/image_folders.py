"""Image-folder datasets (``[split/]<class>/image``, plain or zipped) and folders of unlabeled crops.

Every image is decoded once to a grayscale uint8 array; an unreadable one is counted, never a crash.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from edge_fer.train.fer_csv import FER_SPLITS
from edge_fer.train.load_report import LoadReport

from edge_fer.errors import DataError
from edge_fer.imageio import check_zip_member, read_image_bytes
from edge_fer.labels import LABEL_TO_ID, LABELS

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".webp", ".tif", ".tiff")
SPLIT_DIRS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def decode_gray(data: bytes, size: int | None) -> np.ndarray | None:
    """JPEG/PNG bytes -> (size, size) uint8 grayscale (``size`` None: as stored), or None when the
    image is unreadable."""
    import cv2

    if not data:
        return None
    from edge_fer.imageio import DEFAULT_MAX_PIXELS, image_size

    dims = image_size(data)  # the header only: a small file can declare gigapixels
    if dims is not None and dims[0] * dims[1] > DEFAULT_MAX_PIXELS:
        log.warning(
            "an image of %dx%d pixels is above the %d-pixel limit: not decoded, counted as unreadable",
            dims[0],
            dims[1],
            DEFAULT_MAX_PIXELS,
        )
        return None
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None or img.size == 0:
        return None
    if size and img.shape != (size, size):
        interp = cv2.INTER_AREA if min(img.shape) >= size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return img


def iter_images(folder: Path, size: int) -> Iterator[np.ndarray | None]:
    """Each image file under ``folder`` (recursively, sorted) as (size, size) uint8, or None where it
    cannot be read (a FIFO or a huge file is not read: None)."""
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in IMAGE_EXTS and p.is_file():
            try:
                yield decode_gray(read_image_bytes(p), size)
            except OSError:
                yield None


def read_images(folder: Path, size: int) -> tuple[list[np.ndarray], int]:
    """Every image under ``folder`` (recursively) as (size, size) uint8: (the readable ones, how many
    were unreadable)."""
    imgs, bad = [], 0
    for img in iter_images(folder, size):
        if img is None:
            bad += 1
        else:
            imgs.append(img)
    return imgs, bad


# --- labeled folders (plain or zipped) ----------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    parts: tuple[str, ...]  # path parts relative to the dataset root
    read: object  # () -> bytes


def iter_dir(root: Path) -> Iterator[_Entry]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root).parts
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            p = Path(dirpath) / fn
            yield _Entry(rel + (fn,), lambda p=p: read_image_bytes(p))  # checked: no FIFO, no huge file


def iter_zip(zf: zipfile.ZipFile) -> Iterator[_Entry]:
    for info in zf.infolist():
        if info.is_dir():
            continue
        parts = PurePosixPath(info.filename).parts
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        yield _Entry(parts, lambda info=info: _read_member(zf, info))


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    check_zip_member(info)  # the declared size, before anything is inflated
    try:
        return zf.read(info)
    except (RuntimeError, NotImplementedError) as e:  # encrypted, or a compression zipfile cannot undo
        raise ValueError(f"{info.filename}: {e}") from None


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


def read_folders(
    entries: list[_Entry],
    source: str,
    size: int | None,
    class_map: dict[str, str],
    report: LoadReport,
    only: str | None = None,
    asked: frozenset[str] = frozenset(),
) -> dict[str, tuple[list, list]]:
    """Faces by split from ``<class>/`` folders; ``asked``: the folders of the user's ``--class-map``
    (lower-case), each of which must exist (a mistyped name would silently leave its class out)."""
    entries = _strip_common_root(entries)
    folders: set[str] = set()
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
        folders.add(folder)
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
    missing = sorted(asked - {f.lower() for f in folders})
    if missing:
        found = ", ".join(sorted(folders)) or "none"
        raise DataError(f"{source}: --class-map names no folder here: {', '.join(missing)} (class folders: {found})")
    report.empty_classes = [name for name in LABELS if seen_classes[name] == 0]
    if report.loaded == 0:
        hint = ""
        if report.unknown_classes:
            hint = f"; class folders found: {', '.join(sorted(report.unknown_classes))} (map them with --class-map)"
        raise DataError(f"{source}: no readable face images in <class>/ folders{hint}")
    if fer_named:
        report.kind += ", FER2013 layout"
    return out
