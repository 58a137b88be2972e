"""Event sinks: subclasses of :class:`~edge_fer.types.Sink`, chosen by name.

Adding a sink is one module plus one line in :data:`SINKS`. A sink's constructor takes its typed
options (a section of :class:`~edge_fer.config.Config`, validated there) as the first parameter.
Sinks never raise on transport failures (they count them); constructors may raise
:class:`~edge_fer.errors.EdgeFerError` for settings that cannot work (a port in use) or a missing
optional dependency.

========================  ===========================================================
module                    what it holds
========================  ===========================================================
``textfile``              the text-file output (stdout or a file): append, retry, give up
``jsonl``, ``csv``        the two output formats on top of it (``[output]``)
``mqtt``                  the MQTT sink: paho client, worker thread (``[mqtt]``)
``outbox``                its queue, in-flight window, stall detection and counters
``hass``                  its Home Assistant discovery messages
``http``                  the HTTP sink: the live page, ``/healthz``, ``/metrics``, ``/latest`` (``[http]``)
``auth``                  its access token (``http.token``)
``preview``               its live preview, ``/stream.mjpg`` (``http.preview``)
``timeline``              the live page's timeline of labels
``prometheus``            the ``/metrics`` text
``hostcheck``             the HTTP sink's ``Host`` check (DNS rebinding)
``room``                  the faces in view now (MQTT ``<topic>/state``, HTTP ``/latest``)
========================  ===========================================================
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edge_fer import plugins
from edge_fer.errors import ConfigError, MissingExtraError
from edge_fer.types import Sink

if TYPE_CHECKING:
    from edge_fer.config import Config

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


def build_sinks(cfg: Config, labels: Sequence[str]) -> list[Sink]:
    """The sinks a config asks for: the output (``output.format``), then MQTT and HTTP when configured."""
    labels = tuple(labels)
    sinks: list[Sink] = [sink_class(cfg.output.format)(cfg.output, labels=labels)]
    try:
        if cfg.mqtt.host:
            sinks.append(sink_class("mqtt")(cfg.mqtt, labels=labels))
        if cfg.http.port:
            sinks.append(sink_class("http")(cfg.http, labels=labels))
    except Exception:
        for s in sinks:
            s.close()
        raise
    return sinks


__all__ = ["SINKS", "Sink", "build_sinks", "sink_class"]
