"""The shared part of the text-file sinks (JSON lines, CSV): stdout (``-``) or a file, counters,
and the rule that a broken pipe or closed file stops writing (counted as dropped), never the pipeline."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from edge_fer.errors import ConfigError

log = logging.getLogger(__name__)


def open_output(path: str | Path | None, mode: str, newline: str | None = None) -> tuple[IO[str], bool]:
    """(stream, owned): stdout for None/''/'-', else the file (parent folders created)."""
    if path in (None, "", "-"):
        return sys.stdout, False
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        return open(p, mode, encoding="utf-8", newline=newline), True
    except OSError as e:
        raise ConfigError(f"cannot open output {p}: {e.strerror or e}") from None


class TextFileSink:
    name = "text"

    def __init__(self, path: str | Path | None, mode: str = "w", newline: str | None = None):
        self.path = str(path or "-")
        self._f, self._owned = open_output(path, mode, newline)
        self._sent = self._errors = self._dropped = 0
        self._dead = False

    def _write(self, write: Callable[[], object]) -> bool:
        """Run ``write``; on failure count it, and stop for good on a broken pipe / closed file."""
        if self._dead:
            self._dropped += 1
            return False
        try:
            write()
            return True
        except (OSError, ValueError) as e:  # broken pipe, disk full, closed file
            self._errors += 1
            self._dropped += 1
            self._dead = isinstance(e, (BrokenPipeError, ValueError))
            log.warning("%s sink %s: %s", self.name, self.path, e)
            return False

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
