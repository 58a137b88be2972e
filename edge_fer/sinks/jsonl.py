"""JSON lines to stdout (``-``) or a file: one object per event, each with ``type`` and ``ts``.

A file is appended to (``overwrite=True`` truncates it); see :mod:`edge_fer.sinks.textfile`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_fer.sinks.textfile import TextFileSink
from edge_fer.types import Event


class JsonlSink(TextFileSink):
    name = "jsonl"

    def __init__(self, path: str | Path | None = "-", overwrite: bool = False, append: bool | None = None,
                 **_ignored: Any):
        super().__init__(path, overwrite if append is None else not append)

    def emit(self, event: Event) -> None:
        self._queue(json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n")
