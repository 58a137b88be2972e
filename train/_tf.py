"""Where training touches TensorFlow itself (not Keras): the one-line 'install the train extra' check
(convert and adapt) and tf.distribute's strategy (training on the tensorflow backend)."""

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
