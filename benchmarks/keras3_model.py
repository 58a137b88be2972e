"""Build train/model.py's models on any Keras 3 backend, without TensorFlow (benchmarks only).

train/model.py still writes ``from tensorflow import keras``; once it writes ``import keras`` (issue 12),
this module goes. Until then, :func:`keras3_models` lets those imports resolve to Keras 3 itself
while the models are built, and takes the stand-in away again, so nothing later mistakes it for
TensorFlow. With TensorFlow already imported it does nothing.
"""

from __future__ import annotations

import contextlib
import sys
import types


@contextlib.contextmanager
def keras3_models():
    import keras

    if sys.modules.get("tensorflow") is not None:
        yield
        return
    blocked = "tensorflow" in sys.modules  # None there: imports of it are blocked on purpose
    sys.modules["tensorflow"] = types.SimpleNamespace(keras=keras)  # type: ignore[assignment]
    try:
        yield
    finally:
        if blocked:
            sys.modules["tensorflow"] = None  # type: ignore[assignment]
        else:
            del sys.modules["tensorflow"]
