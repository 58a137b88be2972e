"""What is installed here: the interpreter backends in the runtime's order, their distributions and
versions, and the shipped model. Found, not imported (no native code runs here)."""

from __future__ import annotations

from pathlib import Path

BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")  # the order of edge_fer.interpreter.BACKENDS
RUNTIME_DISTS = {
    "ai_edge_litert": ("ai-edge-litert",),
    "tflite_runtime": ("tflite-runtime",),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
}


def dist_version(*names: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for n in names:
        try:
            return version(n)
        except PackageNotFoundError:
            continue
    return None


def shipped_model() -> Path | None:
    from importlib import resources

    try:
        p = Path(str(resources.files("edge_fer.models").joinpath("default_int8.tflite")))
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - broken install
        return None
    return p if p.is_file() else None


def importable(name: str) -> bool:
    """Whether a backend's top-level package is installed (found, not imported)."""
    import importlib.util

    top = name.split(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False
