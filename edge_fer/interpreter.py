"""TFLite interpreter backends: ``ai_edge_litert`` -> ``tflite_runtime`` -> ``tf.lite``.

Never imports TensorFlow unless both LiteRT and tflite-runtime are missing (and then logs that
``tf.lite`` is the slow fallback). ``device``: ``auto`` (Edge TPU when its delegate loads, else CPU,
with one log line), ``cpu``, or ``edgetpu`` (a clear :class:`ModelError` when the delegate is absent).

A :class:`Backend` is a tiny adapter (name, ``Interpreter`` class, ``load_delegate`` function), so
tests can pass a fake one and check the delegate path without the hardware.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_fer.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "edgetpu")
BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")
_MODULES = {
    "ai_edge_litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}


MAX_AUTO_THREADS = 4


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container or ``taskset`` may allow
    fewer than the machine has)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def auto_threads() -> int:
    """Interpreter threads when the configuration says 0: one per core this process may use, at
    most :data:`MAX_AUTO_THREADS` (a 48x48 face gains little beyond that). The interpreters' own
    default runs XNNPACK on one thread."""
    return min(MAX_AUTO_THREADS, usable_cores())


def edgetpu_library() -> str:
    """The Edge TPU delegate's shared library name on this OS."""
    return {"Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}.get(platform.system(), "libedgetpu.so.1")


@dataclass(frozen=True)
class Backend:
    name: str
    Interpreter: Callable[..., Any]
    load_delegate: Callable[..., Any] | None
    # Checks that a delegate library can be loaded before calling load_delegate (LiteRT's Delegate
    # prints a spurious traceback from __del__ when the library is missing). None: no check.
    probe: Callable[[str], Any] | None = None


def _probe_library(lib: str) -> None:
    import ctypes

    ctypes.CDLL(lib)  # OSError when absent


def _import_backend(name: str) -> Backend:
    mod = importlib.import_module(_MODULES[name])
    if name == "tensorflow":
        # `import tensorflow.lite` is TF's source package, which has no Interpreter; the API is tf.lite
        mod = importlib.import_module("tensorflow").lite
        return Backend(name, mod.Interpreter, getattr(mod.experimental, "load_delegate", None), _probe_library)
    return Backend(name, mod.Interpreter, getattr(mod, "load_delegate", None), _probe_library)


# The backend chosen at start-up by a probe in a child process (edge_fer.doctor.startup_backend: a
# backend that crashes the process, such as LiteRT 2.2+ where /proc/cpuinfo lists no ARM cores, is
# skipped). EDGE_FER_BACKEND in the environment forces one. None: the first importable one.
_preferred: str | None = None


def set_preferred_backend(name: str | None) -> None:
    global _preferred
    if name is not None and name not in BACKENDS:
        raise ConfigError(f"unknown interpreter backend {name!r} (choose from {', '.join(BACKENDS)})")
    _preferred = name


def select_backend(prefer: str | None = None) -> Backend:
    """The first importable backend (``prefer`` first when given; else ``$EDGE_FER_BACKEND``, else the
    one set by :func:`set_preferred_backend`)."""
    if prefer is None and os.environ.get("EDGE_FER_BACKEND", "").strip():
        prefer = os.environ["EDGE_FER_BACKEND"].strip()
        if prefer not in BACKENDS:
            raise ConfigError(
                f"EDGE_FER_BACKEND={prefer!r}: unknown interpreter backend (choose from {', '.join(BACKENDS)})"
            )
    if prefer is None:
        prefer = _preferred
    if prefer is not None and prefer not in BACKENDS:
        raise ConfigError(f"unknown interpreter backend {prefer!r} (choose from {', '.join(BACKENDS)})")
    order = [prefer] if prefer else list(BACKENDS)
    errors = []
    for name in order:
        try:
            backend = _import_backend(name)
        except ImportError as e:
            errors.append(f"{name}: {e}")
            continue
        if name == "tensorflow":
            log.warning(
                "using tf.lite as the TFLite interpreter: the slow fallback (no XNNPACK for int8 here); "
                "install ai-edge-litert"
            )
        return backend
    raise ModelError("no TFLite interpreter available (pip install ai-edge-litert): " + "; ".join(errors))


@dataclass
class LoadedInterpreter:
    """An allocated interpreter plus what was chosen."""

    interpreter: Any
    backend: str
    device: str  # "cpu" or "edgetpu"
    threads: int | None


def load_interpreter(
    model_path: str | None = None,
    model_content: bytes | None = None,
    *,
    device: str = "auto",
    threads: int | None = None,
    backend: Backend | str | None = None,
) -> LoadedInterpreter:
    """Create and allocate an interpreter for a model file or bytes."""
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")
    if threads is not None and threads < 1:
        threads = None
    be = backend if isinstance(backend, Backend) else select_backend(backend)
    kwargs: dict[str, Any] = {}
    if model_content is not None:
        kwargs["model_content"] = model_content
    else:
        kwargs["model_path"] = model_path
    if threads:
        kwargs["num_threads"] = threads

    used = "cpu"
    if device in ("auto", "edgetpu"):
        delegate = None
        lib = edgetpu_library()
        if be.load_delegate is None:
            reason = f"the {be.name} backend cannot load delegates"
        else:
            try:
                if be.probe is not None:
                    be.probe(lib)
                delegate = be.load_delegate(lib)
                reason = ""
            except (OSError, ValueError, RuntimeError) as e:
                reason = f"{lib} could not be loaded ({e})"
        if delegate is not None:
            kwargs["experimental_delegates"] = [delegate]
            used = "edgetpu"
        elif device == "edgetpu":
            raise ModelError(
                f"--device edgetpu: {reason}; install the Edge TPU runtime (libedgetpu1-std) and plug in the "
                "accelerator, or use --device cpu"
            )
        else:
            log.info("Edge TPU not available (%s): running on CPU", reason)
    try:
        interp = be.Interpreter(**kwargs)
        interp.allocate_tensors()
    except ValueError as e:  # the backends raise ValueError for files that are not models
        raise ModelError(f"the interpreter refused the model: {e}") from None
    except RuntimeError as e:
        hint = " (a model compiled for the Edge TPU needs --device edgetpu)" if "edgetpu-custom-op" in str(e) else ""
        raise ModelError(f"the interpreter could not prepare the model: {e}{hint}") from None
    log.debug("interpreter: backend=%s device=%s threads=%s", be.name, used, threads)
    return LoadedInterpreter(interp, be.name, used, threads)
