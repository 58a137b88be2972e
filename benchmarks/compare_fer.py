"""edge-fer vs the `fer` PyPI package, side by side on the same frames (not a test).

    python benchmarks/compare_fer.py --source ../shared/data/video/hamilton_clip.mp4 --model MODEL.tflite

The implementation (and how to install `fer` in its own venv) is :mod:`edge_fer.bench.compare_fer`,
the module ``edge-fer bench --compare fer`` runs; this script is its command line.
"""

from __future__ import annotations

import sys

from edge_fer.bench.compare_fer import load_frames, main

__all__ = ["load_frames", "main"]

if __name__ == "__main__":
    sys.exit(main())
