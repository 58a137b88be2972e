"""The expression classifier: a model bundle (.tflite + edge-fer metadata) behind one small class.

``Classifier.from_file(path)`` reads the metadata (labels, input size, preprocessing), refuses
files it cannot use with the reason, and runs all faces of a frame as one batch. Quantized outputs
are turned into probabilities in exactly one function, :func:`dequantize`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from edge_fer.bundle import ModelMeta, read_bundle_meta_named
from edge_fer.errors import ModelError
from edge_fer.interpreter import Backend, load_interpreter
from edge_fer.preprocess import InputSpec, prepare_batch, to_model_input
from edge_fer.types import Prediction

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "default_int8.tflite"
_SUPPORTED_INPUT = (np.int8, np.uint8, np.float32)


def default_model_path() -> Path:
    """The model shipped in ``edge_fer/models``; :class:`ModelError` when it is not installed."""
    p = Path(str(resources.files("edge_fer.models").joinpath(DEFAULT_MODEL_NAME)))
    if not p.is_file():
        raise ModelError(
            f"no --model given and the default model is not installed ({p} is missing); "
            "pass --model FILE.tflite (made by 'edge-fer convert') or reinstall edge-fer"
        )
    return p


def dequantize_values(raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer tensor values -> float32 ``(q - zero_point) * scale`` (float tensors unchanged)."""
    x = raw.astype(np.float32)
    if raw.dtype.kind in "iu" and scale:
        x = (x - np.float32(zero_point)) * np.float32(scale)
    return x


def dequantize(raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The one place where model outputs become probabilities (float32, rows sum to 1).

    Integer outputs are dequantized by :func:`dequantize_values`; outputs that are not already a
    distribution (logits) go through a softmax."""
    x = dequantize_values(raw, scale, zero_point)
    if x.size and (x.min() < -1e-3 or x.max() > 1.0 + 1e-3):
        x = np.exp(x - x.max(axis=-1, keepdims=True))
    x = np.clip(x, 0.0, None)
    s = x.sum(axis=-1, keepdims=True)
    return np.divide(x, s, out=np.full_like(x, 1.0 / max(1, x.shape[-1])), where=s > 0)


class Classifier:
    """A loaded bundle. ``predict(batch)`` -> ``list[Prediction]``; ``classify(gray, boxes)`` does
    preprocessing too."""

    def __init__(
        self,
        model_bytes: bytes,
        *,
        source: str = "model",
        device: str = "auto",
        threads: int | None = None,
        backend: Backend | str | None = None,
    ):
        self.source = source
        self.meta: ModelMeta = read_bundle_meta_named(model_bytes, source)
        try:
            loaded = load_interpreter(model_content=model_bytes, device=device, threads=threads, backend=backend)
        except ModelError as e:
            raise ModelError(f"{source}: {e}") from None
        self._loaded = loaded
        self.interpreter = loaded.interpreter
        self.backend, self.device, self.threads = loaded.backend, loaded.device, loaded.threads
        inp = self.interpreter.get_input_details()
        out = self.interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError(f"{source}: expected 1 input and 1 output tensor, got {len(inp)} and {len(out)}")
        self._in, self._out = inp[0], out[0]
        shape = tuple(int(v) for v in self._in["shape"])
        m = self.meta
        want = (m.input_height, m.input_width, m.input_channels)
        if len(shape) != 4 or shape[1:] != want:
            raise ModelError(
                f"{source}: input tensor shape {list(shape)} does not match the metadata's (N, {want[0]}, {want[1]}, {want[2]})"
            )
        dtype = np.dtype(self._in["dtype"])
        if dtype.type not in _SUPPORTED_INPUT:
            raise ModelError(f"{source}: unsupported input dtype {dtype} (int8, uint8 or float32)")
        out_shape = [int(v) for v in self._out["shape"]]
        if len(out_shape) != 2 or out_shape[0] != shape[0]:
            raise ModelError(
                f"{source}: output tensor shape {out_shape} is not one vector of class scores per face "
                f"(N, {len(m.labels)})"
            )
        out_dtype = np.dtype(self._out["dtype"])
        if out_dtype.type not in _SUPPORTED_INPUT:
            raise ModelError(f"{source}: unsupported output dtype {out_dtype} (int8, uint8 or float32)")
        n_out = out_shape[-1]
        if n_out != len(m.labels):
            raise ModelError(f"{source}: the model has {n_out} outputs but the metadata lists {len(m.labels)} labels")
        in_scale, in_zp = self._in.get("quantization", (0.0, 0))
        if dtype.kind in "iu" and not in_scale:
            raise ModelError(f"{source}: {dtype} input without quantization parameters")
        self.input_spec = InputSpec(want[0], want[1], want[2], dtype, float(in_scale), int(in_zp))
        self._out_q = tuple(self._out.get("quantization", (0.0, 0)))
        self.labels: tuple[str, ...] = tuple(m.labels)
        self._batch = int(shape[0])
        self._can_resize = True
        log.info(
            "model %s: %dx%dx%d %s input, labels %s, backend %s on %s",
            source,
            *want,
            dtype,
            ",".join(self.labels),
            self.backend,
            self.device,
        )

    @classmethod
    def from_file(cls, path: str | Path | None = None, **kwargs) -> Classifier:
        p = Path(path) if path else default_model_path()
        from edge_fer.fsutil import read_model_bytes

        data = read_model_bytes(p, "model")  # a FIFO, a device or a huge file: refused before reading
        return cls(data, source=str(p), **kwargs)

    @property
    def preprocessing(self):
        return self.meta.preprocessing

    def _ensure_batch(self, n: int) -> bool:
        if n == self._batch:
            return True
        if not self._can_resize:
            return False
        try:
            idx = self._in["index"]
            self.interpreter.resize_tensor_input(idx, [n, *self._in["shape"][1:]], strict=False)
            self.interpreter.allocate_tensors()
            self._batch = n
            self._out = self.interpreter.get_output_details()[0]
            return True
        except (ValueError, RuntimeError, TypeError) as e:
            log.info("batch resize not supported by this model (%s): classifying faces one by one", e)
            self._can_resize = False
            try:
                self.interpreter.resize_tensor_input(self._in["index"], [1, *self._in["shape"][1:]])
                self.interpreter.allocate_tensors()
                self._batch = 1
            except Exception:  # pragma: no cover - restore best effort
                pass
            return False

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._in["index"], batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"]).copy()

    def predict_raw(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, num_classes) for an input batch already in the model's dtype."""
        n = len(batch)
        if n == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if batch.dtype != self.input_spec.dtype:
            raise ModelError(f"input batch dtype {batch.dtype}, the model wants {self.input_spec.dtype}")
        if self.meta.preprocessing.flip_average:  # each crop and its mirror image, probabilities averaged
            probs = self._predict_raw(np.concatenate([batch, batch[:, :, ::-1]]))
            return (probs[:n] + probs[n:]) * np.float32(0.5)
        return self._predict_raw(batch)

    def _predict_raw(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        if self._ensure_batch(n):
            raw = self._invoke(batch)
        else:
            raw = np.concatenate([self._invoke(batch[i : i + 1]) for i in range(n)])
        return dequantize(raw, *self._out_q)

    def predict(self, batch: np.ndarray) -> list[Prediction]:
        return [Prediction(p, self.labels) for p in self.predict_raw(batch)]

    def prepare(self, gray: np.ndarray, boxes: Sequence[Sequence[int]]) -> np.ndarray:
        """Frame (gray) + face boxes -> the model's input batch."""
        return prepare_batch(gray, boxes, self.meta.preprocessing, self.input_spec)

    def prepare_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Already resized uint8 gray crops -> the model's input batch."""
        return to_model_input(crops, self.meta.preprocessing, self.input_spec)

    def classify(self, gray: np.ndarray, boxes: Sequence[Sequence[int]]) -> list[Prediction]:
        return self.predict(self.prepare(gray, boxes))

    def describe(self) -> str:
        return f"{Path(self.source).name} ({self.backend}, {self.device})"
