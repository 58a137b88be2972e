"""JSON lines to stdout (``-``) or a file: one object per event, each with ``type`` and ``ts``.

A file is appended to (``output.overwrite`` truncates it); see :mod:`edge_fer.sinks.textfile`."""

from __future__ import annotations

import json
from collections.abc import Sequence

from edge_fer.config import OutputConfig
from edge_fer.errors import ConfigError
from edge_fer.labels import LABELS
from edge_fer.sinks.textfile import TextFileSink
from edge_fer.types import Event


class JsonlSink(TextFileSink):
    name = "jsonl"

    def __init__(self, options: OutputConfig, *, labels: Sequence[str] = LABELS) -> None:
        """``options.path`` (``-``: stdout) and ``options.overwrite``; ``labels`` are not needed (each
        event names its scores), taken for the same signature as the other output formats."""
        super().__init__(options.path, options.overwrite)
        if not self.appending:
            return
        with open(self.path, encoding="utf-8", errors="replace") as f:
            first = f.readline(4096)  # a file without line breaks is not read whole
        if first.strip() and not first.lstrip().startswith("{"):
            self.close()
            raise ConfigError(
                f"output {self.path}: the file is not JSON lines (it starts {first.strip()[:80]!r}); "
                "append to another file, choose its --format, or pass --overwrite"
            )

    def emit(self, event: Event) -> None:
        self._queue(json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n")
