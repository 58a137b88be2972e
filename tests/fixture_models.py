"""The tiny model bundles the runtime tests load, committed under ``tests/data`` (a few KB each).

They are built with TensorFlow, which the runtime never needs: committing them lets the runtime
tests run on a runtime-only install (``pip install -e '.[test]'``, what a Pi has). Rebuild them
after a change to the bundle format (``edge_fer/bundle.py``, ``convert/metadata.py``)::

    python -m tests.fixture_models          # rewrites tests/data/tiny_*.tflite

``tests/test_fixture_models.py`` (train extra) checks that the committed files are what this
script builds.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
IO_TYPES = ("int8", "uint8", "float32")
# the classifier bundles (input (48,48,1) -> softmax 7) and the quality-gate pair (`convert --write-quality-gate`:
# tiny_ae.tflite, a classifier, and tiny_ae_ae.tflite, its int8 autoencoder, side by side)
CLASSIFIERS = {io: DATA / f"tiny_{io}.tflite" for io in IO_TYPES}
AE_BUNDLE = DATA / "tiny_ae.tflite"


def build_tiny_bundle(path: Path, io_type: str = "int8", seed: int = 0) -> Path:
    """Write a tiny FER-shaped .tflite bundle: input (48,48,1), softmax 7, edge-fer metadata.

    ``io_type``: ``int8`` / ``uint8`` (full-integer, int in/out) or ``float32`` (float model)."""
    import tensorflow as tf
    from edge_fer.convert.metadata import embed_metadata

    from edge_fer.bundle import ModelMeta

    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((48, 48, 1))
    x = tf.keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inp)
    x = tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(7, activation="softmax")(x)
    model = tf.keras.Model(inp, out)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if io_type != "float32":
        rng = np.random.default_rng(seed)

        def rep():
            for _ in range(32):
                yield [rng.random((1, 48, 48, 1), dtype=np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = getattr(tf, io_type)
        conv.inference_output_type = getattr(tf, io_type)
    raw = conv.convert()
    meta = ModelMeta(provenance={"fixture": "tests/fixture_models.py", "io_type": io_type})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(embed_metadata(raw, meta))
    return path


def build_tiny_ae_bundle(path: Path) -> Path:
    """``edge-fer convert --write-quality-gate`` of the tiny trained run of ``tests/ae_fixtures.py``: ``path``
    (the classifier) and ``<stem>_ae.tflite`` (the int8 autoencoder the quality gate runs)."""
    from edge_fer.quality import quality_path
    from tests.ae_fixtures import build_tiny_run

    with tempfile.TemporaryDirectory() as tmp:
        run = build_tiny_run(Path(tmp) / "run")
        out = Path(tmp) / "bundle.tflite"
        convert_tiny_run(run, out)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, path)
        shutil.copyfile(quality_path(out), quality_path(path))
    return path


def convert_tiny_run(run: Path, out: Path):
    """``edge-fer convert --write-quality-gate`` of a tiny run (any accuracy drop accepted, no Edge TPU compile):
    ``out`` and ``<stem>_ae.tflite``. Returns the converter's report."""
    from edge_fer.convert.converter import ConvertOptions, convert_run

    options = ConvertOptions(
        source=run, out=out, quality=True, max_drop=100.0, calib_samples=40, latency_runs=3, compile_edgetpu=False
    )
    return convert_run(options)


def build_all(folder: Path) -> list[Path]:
    """Every committed fixture model, built into ``folder`` under its committed name."""
    made = [build_tiny_bundle(folder / p.name, io) for io, p in CLASSIFIERS.items()]
    ae = build_tiny_ae_bundle(folder / AE_BUNDLE.name)
    from edge_fer.quality import quality_path

    return [*made, ae, quality_path(ae)]


if __name__ == "__main__":
    for p in build_all(DATA):
        print(f"{p.relative_to(DATA.parents[1])}: {p.stat().st_size} B", file=sys.stderr)
