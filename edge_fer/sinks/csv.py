"""CSV: one row per event; a column per label for the scores."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_fer.labels import LABELS
from edge_fer.sinks.textfile import TextFileSink
from edge_fer.types import Event

BASE_COLUMNS = ("type", "ts", "frame", "track_id", "label", "x", "y", "w", "h")


class CsvSink(TextFileSink):
    name = "csv"

    def __init__(self, path: str | Path | None = "-", labels: Sequence[str] = LABELS, **_ignored: Any):
        super().__init__(path, "w", newline="")
        self.labels = tuple(labels)
        self._w = csv.writer(self._f)
        self._write(lambda: self._w.writerow([*BASE_COLUMNS, *self.labels]))

    def emit(self, event: Event) -> None:
        box = event.box or ("", "", "", "")
        scores = event.scores or {}
        row = [event.type, f"{event.ts:.6f}", event.frame if event.frame is not None else "",
               event.track_id if event.track_id is not None else "", event.label or "", *box,
               *(scores.get(n, "") for n in self.labels)]
        if self._write(lambda: self._w.writerow(row)):
            self._sent += 1
