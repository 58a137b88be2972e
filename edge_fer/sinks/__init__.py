"""Event sinks behind the :class:`~edge_fer.types.Sink` protocol, chosen by name.

Adding a sink is one module plus one line in :data:`SINKS`. Sinks never raise on transport
failures (they count them); constructors may raise :class:`~edge_fer.errors.EdgeFerError` for bad
settings or a missing optional dependency.
"""

from __future__ import annotations

import importlib
from typing import Any

from edge_fer import plugins
from edge_fer.errors import ConfigError, MissingExtraError
from edge_fer.types import Sink

# name -> "module:Class" (imported lazily: paho-mqtt only when the mqtt sink is used)
SINKS: dict[str, str] = {
    "jsonl": "edge_fer.sinks.jsonl:JsonlSink",
    "csv": "edge_fer.sinks.csv:CsvSink",
    "mqtt": "edge_fer.sinks.mqtt:MqttSink",
    "http": "edge_fer.sinks.http:HttpSink",
}
_EXTRAS = {"mqtt": ("mqtt", "paho")}


def sink_class(name: str) -> type:
    mod, cls = plugins.resolve(SINKS, name, "sink")
    try:
        return getattr(importlib.import_module(mod), cls)
    except ImportError as e:
        extra = _EXTRAS.get(name)
        if extra and e.name and e.name.split(".")[0] == extra[1]:
            raise MissingExtraError(f"the {name} sink", extra[0], e.name) from None
        if e.name == mod:
            raise ConfigError(f"the {name} sink is not available in this edge-fer build ({mod} missing)") from None
        raise


def create_sink(name: str, **options: Any) -> Sink:
    return sink_class(name)(**options)


__all__ = ["SINKS", "create_sink", "sink_class", "Sink"]
