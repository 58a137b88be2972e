"""CSV: one row per event; a column per label for the scores."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_fer.labels import LABELS
from edge_fer.sinks.jsonl import _open
from edge_fer.types import Event

log = logging.getLogger(__name__)

BASE_COLUMNS = ("type", "ts", "frame", "track_id", "label", "x", "y", "w", "h")


class CsvSink:
    name = "csv"

    def __init__(self, path: str | Path | None = "-", labels: Sequence[str] = LABELS, **_ignored: Any):
        self.path = str(path or "-")
        self.labels = tuple(labels)
        self._f, self._owned = _open(path, "w", newline="")
        self._w = csv.writer(self._f)
        self._sent = self._errors = self._dropped = 0
        self._dead = False
        self._write([*BASE_COLUMNS, *self.labels])

    def _write(self, row: list[Any]) -> bool:
        if self._dead:
            self._dropped += 1
            return False
        try:
            self._w.writerow(row)
            return True
        except (OSError, ValueError) as e:
            self._errors += 1
            self._dropped += 1
            self._dead = isinstance(e, (BrokenPipeError, ValueError))
            log.warning("csv sink %s: %s", self.path, e)
            return False

    def emit(self, event: Event) -> None:
        box = event.box or ("", "", "", "")
        scores = event.scores or {}
        row = [event.type, f"{event.ts:.6f}", event.frame if event.frame is not None else "",
               event.track_id if event.track_id is not None else "", event.label or "", *box,
               *(scores.get(n, "") for n in self.labels)]
        if self._write(row):
            self._sent += 1

    def flush(self) -> None:
        if not self._dead:
            try:
                self._f.flush()
            except (OSError, ValueError):
                self._errors += 1
                self._dead = True

    def close(self) -> None:
        self.flush()
        if self._owned:
            try:
                self._f.close()
            except OSError:
                pass

    def stats(self) -> dict[str, int]:
        return {"sent": self._sent, "dropped": self._dropped, "errors": self._errors}
