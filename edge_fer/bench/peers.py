"""``edge-fer bench --compare PEER``: the side-by-side with another package lives in ``benchmarks/``
(it is not part of the runtime); this finds it in the source checkout edge-fer runs from."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from edge_fer.errors import ConfigError

PEERS = {"fer": "compare_fer"}  # peer -> its module in benchmarks/
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_peer(name: str) -> ModuleType:
    """The ``benchmarks/`` module that runs ``name`` side by side with edge-fer, after checking that
    the peer itself is importable (one clear error before anything runs). The module has
    ``compare(cfg, max_frames=, warmup=, loops=)``, whose report goes under ``compare`` in the
    pipeline report, and ``format_compare(report) -> str``."""
    if name not in PEERS:
        raise ConfigError(f"--compare: unknown peer {name!r} (known: {', '.join(PEERS)})")
    modname = PEERS[name]
    path = BENCHMARKS / f"{modname}.py"
    mod = sys.modules.get(modname)
    if mod is None:
        if not path.is_file():
            raise ConfigError(
                f"--compare {name} runs {path.name} from the benchmarks/ folder of an edge-fer source "
                f"checkout; there is none at {path.parent}"
            )
        spec = importlib.util.spec_from_file_location(modname, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[modname]
            raise
    mod.require_peer()
    return mod
