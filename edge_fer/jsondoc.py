"""Every JSON document edge-fer writes has the same head: ``schema`` (``edge-fer-<kind>/<major>``),
the tool's ``version`` and the UTC time it was ``created``; a reader checks ``schema`` before anything
else. ``--json PATH`` writes a report, where ``-`` means standard output.

::

    doc = jsondoc.document("eval", {"accuracy": 0.705, ...})
    jsondoc.write(args.json, doc)
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

from edge_fer import __version__
from edge_fer.errors import OutputError
from edge_fer.jsonutil import json_default

HEAD_KEYS = ("schema", "version", "created")


def schema_id(kind: str, major: int = 1) -> str:
    return f"edge-fer-{kind}/{major}"


def utc_now() -> str:
    """ISO 8601 in UTC with a ``Z``, to the millisecond."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def document(kind: str, body: dict[str, Any], major: int = 1) -> dict[str, Any]:
    """``body`` under the common head; keys of ``body`` that repeat the head are replaced by it."""
    head = {"schema": schema_id(kind, major), "version": __version__, "created": utc_now()}
    return {**head, **{k: v for k, v in body.items() if k not in HEAD_KEYS}}


def dumps(doc: Any, indent: int | None = 2) -> str:
    return json.dumps(doc, indent=indent, default=json_default) + "\n"


def to_stdout(path: str | Path | None) -> bool:
    """Whether ``--json PATH`` means standard output (then no table goes there)."""
    return path is not None and str(path) == "-"


def write(path: str | Path | None, doc: Any, *, indent: int | None = 2, mkdir: bool = False) -> None:
    """Write ``doc`` to ``path`` atomically, or to stdout when ``path`` is ``-``; nothing when ``None``.
    ``mkdir``: create the missing folders first. A write that fails is an :class:`OutputError` (exit 74)."""
    if path is None or str(path) == "":
        return
    text = dumps(doc, indent)
    if str(path) == "-":
        if sys.stdout is None:
            raise OutputError("cannot write the JSON report to stdout: stdout is closed")
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except (OSError, ValueError, AttributeError) as e:  # closed or missing stdout
            raise OutputError(f"cannot write the JSON report to stdout: {e}") from None
        return
    from edge_fer.fsutil import atomic_write_text

    try:
        if mkdir:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        atomic_write_text(path, text)
    except Exception as e:  # EdgeFerError from the atomic write: an output problem, not the user's input
        raise OutputError(str(e)) from None
