"""TensorFlow import with the one-line 'install the train extra' error (desktop side only)."""

from __future__ import annotations

import os

from edge_fer.errors import MissingExtraError


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
