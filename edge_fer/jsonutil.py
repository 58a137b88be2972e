"""JSON for events and reports: numpy scalars and arrays become plain numbers and lists,
dataclasses with ``to_dict`` their dict, anything else its ``str``."""

from __future__ import annotations

import json
from typing import Any


def json_default(o: Any) -> Any:
    for attr in ("to_dict", "tolist", "item"):
        if hasattr(o, attr):
            return getattr(o, attr)()
    return str(o)


def dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps`` that accepts numpy values and ``to_dict`` objects."""
    return json.dumps(obj, default=json_default, **kw)
