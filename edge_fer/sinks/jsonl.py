"""JSON lines to stdout (``-``) or a file: one object per event, each with ``type`` and ``ts``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import IO, Any

from edge_fer.errors import ConfigError
from edge_fer.types import Event

log = logging.getLogger(__name__)


def _open(path: str | Path | None, mode: str, newline: str | None = None) -> tuple[IO[str], bool]:
    if path in (None, "", "-"):
        return sys.stdout, False
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        return open(p, mode, encoding="utf-8", newline=newline), True
    except OSError as e:
        raise ConfigError(f"cannot open output {p}: {e.strerror or e}") from None


class JsonlSink:
    name = "jsonl"

    def __init__(self, path: str | Path | None = "-", append: bool = False, **_ignored: Any):
        self.path = str(path or "-")
        self._f, self._owned = _open(path, "a" if append else "w")
        self._sent = self._errors = self._dropped = 0
        self._dead = False

    def emit(self, event: Event) -> None:
        if self._dead:
            self._dropped += 1
            return
        try:
            self._f.write(json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n")
            self._sent += 1
        except (OSError, ValueError) as e:  # broken pipe, disk full, closed file
            self._errors += 1
            self._dropped += 1
            if isinstance(e, BrokenPipeError) or isinstance(e, ValueError):
                self._dead = True
            log.warning("jsonl sink %s: %s", self.path, e)

    def flush(self) -> None:
        if self._dead:
            return
        try:
            self._f.flush()
        except (OSError, ValueError) as e:
            self._errors += 1
            self._dead = isinstance(e, (BrokenPipeError, ValueError))

    def close(self) -> None:
        self.flush()
        if self._owned:
            try:
                self._f.close()
            except OSError:
                pass

    def stats(self) -> dict[str, int]:
        return {"sent": self._sent, "dropped": self._dropped, "errors": self._errors}
