"""Home Assistant MQTT discovery for the MQTT sink (``mqtt.discovery = true``).

Retained config messages under ``<discovery_prefix>/sensor/<node_id>/<object>/config`` create one
device with an ``Expression`` sensor (label of the largest face), a ``Faces`` sensor (count) and one
``%`` sensor per expression, all reading ``<topic>/state`` and using ``<topic>/availability``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from typing import Any


def slug(text: str) -> str:
    """``text`` reduced to the characters allowed in MQTT ids and Home Assistant object ids."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "edge_fer"


def node_id(topic: str) -> str:
    """The device's id: one per machine and topic prefix."""
    return slug(f"edge_fer_{socket.gethostname()}_{topic}")


def _version() -> str | None:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        return version("edge-fer")
    except Exception:  # noqa: BLE001
        return None


def discovery_configs(
    *, node: str, device_name: str, prefix: str, state_topic: str, availability_topic: str, labels: Sequence[str]
) -> list[tuple[str, dict[str, Any]]]:
    """(config topic, payload) of each discovery message (published retained on every connect)."""
    device: dict[str, Any] = {
        "identifiers": [node],
        "name": device_name,
        "manufacturer": "edge-fer",
        "model": "edge-fer facial-expression recognizer",
    }
    sw = _version()
    if sw:
        device["sw_version"] = sw
    common = {
        "state_topic": state_topic,
        "availability_topic": availability_topic,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
    }
    out: list[tuple[str, dict[str, Any]]] = []

    def add(obj: str, cfg: dict[str, Any]) -> None:
        uid = f"{node}_{obj}"
        out.append((f"{prefix}/sensor/{node}/{obj}/config", {**cfg, "unique_id": uid, "object_id": uid, **common}))

    add(
        "expression",
        {
            "name": "Expression",
            "icon": "mdi:emoticon-outline",
            "value_template": "{{ value_json.label }}",
            "json_attributes_topic": state_topic,
            "json_attributes_template": "{{ {'confidence': value_json.confidence, "
            "'tracks': value_json.tracks} | tojson }}",
        },
    )
    add(
        "faces",
        {
            "name": "Faces",
            "icon": "mdi:account-multiple",
            "state_class": "measurement",
            "value_template": "{{ value_json.faces }}",
        },
    )
    for label in labels:
        add(
            f"score_{slug(label)}",
            {
                "name": label.capitalize(),
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "icon": "mdi:emoticon-outline",
                "value_template": "{{ ((value_json.scores['" + label + "'] | default(0)) * 100) | round(1) }}",
            },
        )
    return out
