"""Where training touches TensorFlow itself (not Keras): the one-line 'install the train extra' check,
the distribution strategy, the compiled predict function and the versions recorded in a run."""

from __future__ import annotations

import logging
import os

from edge_fer.errors import MissingExtraError

log = logging.getLogger("edge_fer.train")


def require_tensorflow(what: str) -> None:
    """Check that TensorFlow is installed, or raise :class:`MissingExtraError` naming the 'train' extra.

    It is found, not imported: the import (seconds, and C++ log lines on stderr) happens where it is
    used, after the user's input has been checked, so a mistake is one line and fast."""
    import importlib.util

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines, before its import
    try:
        found = importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtraError(what, "train", "tensorflow")


def choose_strategy():
    """One device, several GPUs, or multi-worker from TF_CONFIG: the same command everywhere."""
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        log.info("TF_CONFIG set: MultiWorkerMirroredStrategy")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("%d GPUs: MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    if gpus:
        log.info("GPU: %s", gpus[0].name)
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    log.info("no GPU found: training on the CPU (%d cores)", os.cpu_count() or 1)
    return tf.distribute.get_strategy()


def predict_function(model):
    """``model(x, training=False)`` compiled once; returns numpy arrays."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False))
    return lambda x: fn(x).numpy()


def framework_versions() -> dict[str, str]:
    """The versions a run's provenance records."""
    import tensorflow as tf
    from tensorflow import keras

    return {"tensorflow": tf.__version__, "keras": keras.__version__}
