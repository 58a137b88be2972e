"""JSON lines to stdout (``-``) or a file: one object per event, each with ``type`` and ``ts``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_fer.sinks.textfile import TextFileSink
from edge_fer.types import Event


class JsonlSink(TextFileSink):
    name = "jsonl"

    def __init__(self, path: str | Path | None = "-", append: bool = False, **_ignored: Any):
        super().__init__(path, "a" if append else "w")

    def emit(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n"
        if self._write(lambda: self._f.write(line)):
            self._sent += 1
