"""The original ``fer2013.csv`` (columns emotion, pixels, Usage): every row a 48x48 face.

A malformed row is a :class:`DataError` naming the line, never a traceback."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

import numpy as np
from edge_fer.train.load_report import LoadReport

from edge_fer.errors import DataError
from edge_fer.labels import LABELS

CSV_COLUMNS = ("emotion", "pixels", "Usage")
# FER2013 CSV "Usage" values and image-file prefixes -> our split names.
FER_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def read_csv(stream: Iterable[str], source: str, size: int | None, report: LoadReport) -> dict[str, tuple[list, list]]:
    size = size or 48  # the CSV's pixel rows are 48x48
    reader = csv.reader(stream)
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]  # a UTF-8 BOM (Excel) is not a name
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
        if len(row) != len(header):
            raise DataError(
                f"{source}: line {lineno}: {len(row)} field(s), expected {len(header)} ({','.join(header)})"
            )
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
