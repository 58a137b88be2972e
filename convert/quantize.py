"""Keras model -> TFLite bytes: full-integer post-training quantization (and the float32 reference).

Path (documented for TF 2.21 / Keras 3): ``model.export(dir, input_signature=batch-1 spec)`` then
``TFLiteConverter.from_saved_model(dir)``. The batch-1 signature gives static shapes everywhere
(Edge TPU requirement). Quantization: ``Optimize.DEFAULT`` + a representative dataset of real face
crops + ``supported_ops = [TFLITE_BUILTINS_INT8]`` (per-channel weights are the converter's default),
int8 (or uint8) input and output. Anything the converter cannot quantize fails the conversion.
"""

from __future__ import annotations

import logging
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edge_fer.bundle import ModelMeta
from edge_fer.errors import ModelError

log = logging.getLogger(__name__)


def load_keras_model(path: Path) -> Any:
    """Load a Keras 3 ``.keras`` file, or raise a one-line :class:`ModelError`."""
    import keras

    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a Keras model (a .keras file is a zip archive)")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # keras raises ValueError/TypeError/KeyError/OSError for bad files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: cannot load the Keras model ({first[:200]})") from None


def shape_of(t: Any) -> tuple:
    return tuple(None if d is None else int(d) for d in t.shape)


def check_classifier(model: Any, meta: ModelMeta, source: str) -> None:
    """One float image input (None, H, W, C) matching the metadata, one (None, n_labels) output."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(
            f"{source}: expected one input and one output, got {len(model.inputs)} and {len(model.outputs)}"
        )
    want = (None, meta.input_height, meta.input_width, meta.input_channels)
    got = shape_of(model.inputs[0])
    if len(got) != 4 or got[1:] != want[1:]:
        raise ModelError(
            f"{source}: wrong input shape {got}; the metadata says (batch, {meta.input_height}, "
            f"{meta.input_width}, {meta.input_channels})"
        )
    out = shape_of(model.outputs[0])
    if len(out) != 2 or out[1] != len(meta.labels):
        raise ModelError(
            f"{source}: output shape {out} does not match the {len(meta.labels)} labels {list(meta.labels)}"
        )


def _export(model: Any, workdir: str) -> str:
    import tensorflow as tf

    spec = tf.TensorSpec((1, *shape_of(model.inputs[0])[1:]), tf.float32, name="image")
    path = str(Path(workdir) / "saved_model")
    model.export(path, input_signature=[spec], verbose=False)
    return path


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # The MLIR converter's errors say the useful part after 'error:'.
    for ln in lines:
        if "error:" in ln:
            return ln[ln.index("error:") :][:300]
    return (lines[0] if lines else type(e).__name__)[:300]


def convert(model: Any, representative: np.ndarray | None, io: str = "int8") -> bytes:
    """TFLite flatbuffer of ``model`` at batch 1: full int8 when ``representative`` (float32 model
    inputs, (N, ...)) is given, float32 otherwise."""
    import tensorflow as tf

    tf_log = logging.getLogger("tensorflow")
    level = tf_log.level
    tf_log.setLevel(max(level, logging.WARNING))  # "Assets written to: <tmp>" is noise here
    try:
        return _convert(tf, model, representative, io)
    finally:
        tf_log.setLevel(level)


def _convert(tf: Any, model: Any, representative: np.ndarray | None, io: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="edge-fer-convert-") as tmp:
        saved = _export(model, tmp)
        conv = tf.lite.TFLiteConverter.from_saved_model(saved)
        if representative is not None:
            if len(representative) == 0:
                raise ModelError("empty calibration set")
            io_type = {"int8": tf.int8, "uint8": tf.uint8}[io]
            rep = np.ascontiguousarray(representative, dtype=np.float32)

            def gen():
                for i in range(rep.shape[0]):
                    yield [rep[i : i + 1]]

            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = gen
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = io_type
            conv.inference_output_type = io_type
        try:
            return bytes(conv.convert())
        except Exception as e:  # ConverterError and friends: one line, the model is not usable
            kind = "full-integer (int8)" if representative is not None else "float32"
            raise ModelError(f"{kind} TFLite conversion failed: {_first_line(e)}") from None
