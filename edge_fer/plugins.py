"""Backends chosen by name: a registry maps a name to ``"module:Class"``, imported only when used,
so adding a backend is one new file plus one registry line."""

from __future__ import annotations

import importlib

from edge_fer.errors import ConfigError


def resolve(registry: dict[str, str], name: str, kind: str) -> tuple[str, str]:
    """(module, class name) registered for ``name``; a ConfigError listing the choices otherwise."""
    try:
        target = registry[name]
    except KeyError:
        raise ConfigError(f"unknown {kind} {name!r} (choose from {', '.join(registry)})") from None
    mod, cls = target.split(":")
    return mod, cls


def load(registry: dict[str, str], name: str, kind: str) -> type:
    mod, cls = resolve(registry, name, kind)
    return getattr(importlib.import_module(mod), cls)
