"""``edge-fer bench --compare PEER``: the side-by-side with another package (:mod:`.compare_fer`),
part of the installed package; the peer itself (``fer``) is an optional package checked before
anything runs."""

from __future__ import annotations

import importlib
from types import ModuleType

from edge_fer.errors import ConfigError

PEERS = {"fer": "edge_fer.bench.compare_fer"}  # peer -> the module that runs it side by side


def load_peer(name: str) -> ModuleType:
    """The module that runs ``name`` side by side with edge-fer, after checking that the peer itself
    is importable (one clear error before anything runs). The module has
    ``compare(cfg, max_frames=, warmup=, loops=)``, whose report goes under ``compare`` in the
    pipeline report, and ``format_compare(report) -> str``."""
    if name not in PEERS:
        raise ConfigError(f"--compare: unknown peer {name!r} (known: {', '.join(PEERS)})")
    mod = importlib.import_module(PEERS[name])
    mod.require_peer()
    return mod
