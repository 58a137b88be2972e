"""edge-fer: facial-expression recognition from dataset to a headless edge device.

Importing this package is cheap and never imports TensorFlow: the on-device runtime
(``edge_fer.pipeline`` and friends) runs on numpy, OpenCV and a TFLite interpreter only.
"""

__version__ = "0.1.0"

from edge_fer.errors import EdgeFerError  # noqa: E402
from edge_fer.labels import LABELS  # noqa: E402

__all__ = ["__version__", "EdgeFerError", "LABELS"]
