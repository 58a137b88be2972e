"""Which Keras 3 backend trains: TensorFlow, JAX or PyTorch, chosen once before Keras is imported.

Rule (``edge-fer train --backend``): the explicit choice, else the ``KERAS_BACKEND`` environment
variable, else TensorFlow when installed, else JAX, else PyTorch. Each backend comes with its own
extra, named in the one-line error when it is missing. Finding a backend never imports it (seconds
of start-up and C++ log lines): only :func:`activate` and :func:`describe_device` touch Keras.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from typing import Any

from edge_fer.errors import ConfigError, EdgeFerError, MissingExtraError

log = logging.getLogger("edge_fer.train")

BACKENDS = ("tensorflow", "jax", "torch")
# backend -> the extra that installs it (and Keras 3 with it)
EXTRAS = {"tensorflow": "train", "jax": "jax", "torch": "torch"}


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def installed(backend: str) -> bool:
    """The backend's framework and Keras 3 are both importable (found, not imported)."""
    return _found(backend) and _found("keras")


def _require(backend: str, what: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"{what}: unknown backend {backend!r} (choose {', '.join(BACKENDS)})")
    for module in (backend, "keras"):
        if not _found(module):
            raise MissingExtraError(f"{what}", EXTRAS[backend], module)
    return backend


def resolve_backend(requested: str | None = None) -> str:
    """The backend to train with, by the rule above; a one-line error naming the extra when the
    requested one is not installed, or when none of the three is."""
    if requested:
        return _require(requested.strip().lower(), f"--backend {requested}")
    env = os.environ.get("KERAS_BACKEND", "").strip()
    if env:
        return _require(env.lower(), f"KERAS_BACKEND={env}")
    for backend in BACKENDS:
        if installed(backend):
            return backend
    err = MissingExtraError("training", "train", "tensorflow, jax or torch")
    err.args = (f"{err.args[0]} (or 'edge-fer[jax]', 'edge-fer[torch]')",)
    raise err


def activate(backend: str) -> None:
    """Make ``backend`` the one Keras uses. Must run before the first ``import keras`` (Keras fixes
    its backend then, for the life of the process); an earlier import with another backend is an error."""
    backend = _require(backend, "--backend")
    if backend == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines, before its import
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise EdgeFerError(
                f"Keras was already imported with the {current} backend in this process; "
                f"set KERAS_BACKEND={backend} before starting it to train on {backend}"
            )
        return
    os.environ["KERAS_BACKEND"] = backend


def keep_tensorflow_out() -> None:
    """On JAX or PyTorch, have Keras act as if TensorFlow were not installed: it otherwise imports it
    whenever it is installed, to seed it or to recognise tf.data inputs (seconds, hundreds of MB and C++
    log lines for nothing). Call after :func:`activate`; a no-op on TensorFlow."""
    import keras

    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        return
    try:
        from keras.src.utils import module_utils

        module_utils.tensorflow._available = False  # what Keras's own `tf.available` checks read
    except (ImportError, AttributeError):  # another Keras layout: it may import TensorFlow, harmlessly
        pass


def _tensorflow_devices() -> tuple[str, list[str]]:
    import tensorflow as tf

    devices = []
    for i, gpu in enumerate(tf.config.list_physical_devices("GPU")):
        try:
            name = tf.config.experimental.get_device_details(gpu).get("device_name", "")
        except (RuntimeError, ValueError):
            name = ""
        devices.append(f"cuda:{i} {name}".strip())
    return tf.__version__, devices or ["cpu"]


def _jax_devices() -> tuple[str, list[str]]:
    import jax

    def name(d) -> str:
        if d.platform == "cpu":
            return "cpu"
        return f"{'cuda' if d.platform == 'gpu' else d.platform}:{d.id} {d.device_kind}".strip()

    return jax.__version__, list(dict.fromkeys(name(d) for d in jax.devices()))  # the CPU once


def _torch_devices() -> tuple[str, list[str]]:
    import torch

    if torch.cuda.is_available():
        devices = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices = ["mps"]
    else:
        devices = ["cpu"]
    return torch.__version__, devices


def describe_device() -> dict:
    """The active backend and what it trains on, for the log and metadata.json:
    ``{"backend", "keras", "backend_version", "devices"}``, devices e.g. ``["cpu"]`` or
    ``["cuda:0 NVIDIA H200"]``. Imports Keras (so call :func:`activate` first)."""
    import keras

    backend = keras.backend.backend()
    probe = {"tensorflow": _tensorflow_devices, "jax": _jax_devices, "torch": _torch_devices}.get(backend)
    version, devices = probe() if probe else ("", ["cpu"])
    return {"backend": backend, "keras": keras.__version__, "backend_version": version, "devices": devices}


def jax_data_parallel() -> int:
    """On JAX with several devices, train data-parallel over all of them (``keras.distribution``, the
    counterpart of tf.distribute's MirroredStrategy): each batch is split across the devices. Call
    after :func:`activate` and before the models are built. Returns the number of devices used."""
    import jax
    import keras

    devices = jax.devices()
    if len(devices) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return len(devices)


class NoStrategy:
    """One device (or JAX's process-wide ``keras.distribution``): a strategy with nothing to enter."""

    num_replicas_in_sync = 1

    def scope(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


def training_strategy(backend: str, batch_size: int) -> tuple[Any, int]:
    """How this process trains on ``backend``: ``(strategy, multiple)``, where ``strategy.scope()``
    wraps building and compiling the models and every batch must hold a multiple of ``multiple`` faces.
    TensorFlow: tf.distribute (one device, several GPUs, or TF_CONFIG's workers). JAX: data parallel
    over all devices when there are several and ``batch_size`` is a multiple of their number. Else (and
    on PyTorch) the one default device."""
    if backend == "tensorflow":
        from edge_fer.train._tf import choose_strategy

        return choose_strategy(), 1
    if backend == "jax":
        import jax

        n = len(jax.devices())
        if n > 1 and batch_size % n == 0:
            jax_data_parallel()
            log.info("%d devices: JAX data parallel (keras.distribution)", n)
            return NoStrategy(), n
        if n > 1:
            log.warning("%d devices but --batch-size %d is not a multiple: training on one", n, batch_size)
    return NoStrategy(), 1
