"""CSV: one row per event, the fields of the JSONL events: the fixed ones, the box as x, y, w, h, a
column per label for the scores, the extra keys (:data:`edge_fer.types.EVENT_EXTRA_KEYS`, empty where
an event has none), then ``schema`` and ``version``.

A file is appended to (``output.overwrite`` truncates it): the header row is written only to an empty
file, and a file that starts with another header is refused (its columns would not line up)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from edge_fer.config import OutputConfig
from edge_fer.errors import ConfigError
from edge_fer.labels import LABELS
from edge_fer.sinks.textfile import TextFileSink
from edge_fer.types import EVENT_EXTRA_KEYS, Event

BASE_COLUMNS = ("type", "ts", "frame", "track_id", "label", "x", "y", "w", "h")
TAIL_COLUMNS = ("media_time_s", *EVENT_EXTRA_KEYS, "schema", "version")


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"  # as in the JSONL
    return v


def _row(values: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue()


class CsvSink(TextFileSink):
    name = "csv"

    def __init__(self, options: OutputConfig, *, labels: Sequence[str] = LABELS) -> None:
        """``options.path`` (``-``: stdout) and ``options.overwrite``; a score column per label."""
        super().__init__(options.path, options.overwrite)
        self.labels = tuple(labels)
        header = self._header = _row([*BASE_COLUMNS, *self.labels, *TAIL_COLUMNS])
        if not self.appending:
            self._queue(header, event=False)
            return
        with open(self.path, encoding="utf-8", errors="replace", newline="") as f:
            first = f.readline(4096)  # a file without line breaks is not read whole
        if first.rstrip("\r\n") != header.rstrip("\r\n"):
            self.close()
            raise ConfigError(
                f"output {self.path}: the file has other CSV columns than this model's "
                f"({first.strip()[:80]!r}); append to another file, or pass --overwrite"
            )

    def _on_new_file(self) -> None:
        """A rotated, deleted or truncated file starts again with the header row."""
        if not self._pending or self._pending[0][0] != self._header:
            self._pending.insert(0, (self._header, False))
            self._pending_bytes += len(self._header)

    def emit(self, event: Event) -> None:
        box = event.box or ("", "", "", "")
        scores = event.scores or {}
        d = event.to_dict()
        self._queue(
            _row(
                [
                    event.type,
                    f"{event.ts:.6f}",
                    event.frame if event.frame is not None else "",
                    event.track_id if event.track_id is not None else "",
                    event.label or "",
                    *box,
                    *(scores.get(n, "") for n in self.labels),
                    *(_cell(d.get(k)) for k in TAIL_COLUMNS),
                ]
            )
        )
