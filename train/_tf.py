"""TensorFlow import with the one-line 'install the train extra' error (desktop side only)."""

from __future__ import annotations

import os

from edge_fer.errors import MissingExtraError


def require_tensorflow(what: str) -> None:
    """Import TensorFlow (quietly) or raise :class:`MissingExtraError` naming the 'train' extra."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines, before its import
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise MissingExtraError(what, "train", "tensorflow") from None
