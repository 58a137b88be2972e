"""Float Keras vs quantized TFLite on the same held-out crops: metrics, agreement, latency.

The TFLite side runs in the runtime's interpreter (:func:`edge_fer.interpreter.load_interpreter`, on
the CPU), one crop at a time at batch 1, exactly as deployed: quantize the float input with the
model's input (scale, zero_point), invoke, read the output's argmax. Latency figures come from the
runtime's own statistics (:func:`edge_fer.stats.summarize_ms`), so convert and bench agree.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from edge_fer.train.metrics import classification_report

from edge_fer.errors import ModelError


def keras_predict(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Float model probabilities for float inputs (N, H, W, C)."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


def load(model_bytes: bytes, num_threads: int = 1) -> Any:
    """The runtime's interpreter for ``model_bytes``, on the CPU, allocated."""
    from edge_fer.interpreter import load_interpreter

    return load_interpreter(model_content=model_bytes, device="cpu", threads=num_threads)


def io_details(it: Any) -> tuple[dict, dict]:
    ins, outs = it.get_input_details(), it.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise ModelError(f"expected 1 input and 1 output, the TFLite model has {len(ins)} and {len(outs)}")
    return ins[0], outs[0]


def _quant_params(detail: dict) -> dict[str, Any]:
    scale, zp = detail["quantization"]
    return {
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": float(scale),
        "zero_point": int(zp),
        "shape": [int(d) for d in detail["shape"]],
    }


def io_quantization(model_bytes: bytes) -> dict[str, dict[str, Any]]:
    """``{"input": {dtype, scale, zero_point, shape}, "output": {...}}`` of a TFLite model: what the
    bundle's metadata records."""
    din, dout = io_details(load(model_bytes).interpreter)
    return {"input": _quant_params(din), "output": _quant_params(dout)}


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float model input -> the tensor's dtype with its (scale, zero_point): the runtime's function."""
    from edge_fer.preprocess import quantize

    scale, zp = detail["quantization"]
    dtype = np.dtype(detail["dtype"])
    return x.astype(dtype) if dtype.kind == "f" or not scale else quantize(x, dtype, scale, zp)


def dequantize(q: np.ndarray, detail: dict) -> np.ndarray:
    """Raw output values (the decoder's pixels, not probabilities): the runtime's dequantization."""
    from edge_fer.classify import dequantize_values

    return dequantize_values(q, *detail["quantization"])


def classifier_predict(bundle_bytes: bytes, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    """Probabilities (N, K) for uint8 gray crops (N, H, W), computed by the runtime's own
    :class:`edge_fer.classify.Classifier`: the same preprocessing, quantization, batching and
    dequantization code that runs on the device, so the verification covers the deployed path."""
    from edge_fer.classify import Classifier

    clf = Classifier(bundle_bytes, source="the converted model", device="cpu", threads=1)
    out = [clf.predict_raw(clf.prepare_crops(list(crops[i : i + batch]))) for i in range(0, len(crops), batch)]
    return np.concatenate(out) if out else np.zeros((0, len(clf.labels)), np.float32)


def tflite_predict(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Dequantized raw outputs (N, ...) of any TFLite model (the decoder) for float inputs, at batch 1."""
    it = load(model_bytes).interpreter
    din, dout = io_details(it)
    if tuple(din["shape"][1:]) != tuple(x.shape[1:]):
        raise ModelError(f"TFLite input {tuple(din['shape'])} does not take crops of shape {x.shape[1:]}")
    q = quantize_input(x, din)
    out = np.empty((x.shape[0], int(np.prod(dout["shape"][1:]))), dtype=np.float32)
    for i in range(x.shape[0]):
        it.set_tensor(din["index"], q[i : i + 1])
        it.invoke()
        out[i] = dequantize(it.get_tensor(dout["index"]), dout).reshape(-1)
    return out


# the report's latency keys: those of edge_fer.stats.summarize_ms (the bench reports use the same)
LATENCY_KEYS = ("n", "p50_ms", "p90_ms")


def latency_ms(
    model_bytes: bytes, x: np.ndarray, runs: int = 200, warmup: int = 20, num_threads: int = 1
) -> dict[str, Any]:
    """p50/p90 wall time of one ``invoke()`` at batch 1 on this machine (input set once), in ms."""
    from edge_fer.stats import summarize_ms

    loaded = load(model_bytes, num_threads=num_threads)
    it = loaded.interpreter
    din, _ = io_details(it)
    it.set_tensor(din["index"], quantize_input(x[:1], din))
    for _ in range(warmup):
        it.invoke()
    seconds = []
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        it.invoke()
        seconds.append(time.perf_counter() - t0)
    stats = summarize_ms(seconds)
    return {**{key: stats[key] for key in LATENCY_KEYS}, "threads": num_threads, "runtime": loaded.backend}


def compare(
    y: np.ndarray, p_float: np.ndarray, p_q: np.ndarray, labels: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any], float, dict[str, Any]]:
    """(float metrics, quantized metrics, top-1 agreement, deltas in percentage points)."""
    a, b = p_float.argmax(axis=1), p_q.argmax(axis=1)
    mf, mq = classification_report(y, a, labels), classification_report(y, b, labels)
    agreement = float((a == b).mean()) if len(a) else 0.0
    delta = {
        "accuracy_points": round(100 * (mq["accuracy"] - mf["accuracy"]), 4),
        "macro_f1_points": round(100 * (mq["macro_f1"] - mf["macro_f1"]), 4),
        "per_class_f1_points": {
            c: round(100 * (mq["per_class"][c]["f1"] - mf["per_class"][c]["f1"]), 4) for c in labels
        },
        "per_class_recall_points": {
            c: round(100 * (mq["per_class"][c]["recall"] - mf["per_class"][c]["recall"]), 4) for c in labels
        },
    }
    return mf, mq, agreement, delta
