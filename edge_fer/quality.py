"""The crop-quality gate: the reconstruction error of the stage-1 autoencoder, on the device.

``edge-fer convert --write-quality-gate`` writes the autoencoder (trained on face crops before the classifier)
as a second full-int8 model next to the bundle, ``<bundle>_ae.tflite``, with edge-fer metadata whose
``metrics["quality_gate"]`` holds the threshold calibrated on validation faces (a high percentile of
their reconstruction MSE; see :func:`quality_path`). At run time every classified crop gets its
reconstruction error (mean squared error, pixels scaled as the model input, [0, 1] by default); a
crop whose error exceeds the threshold is *low quality*: not a face, blurred, occluded, extreme pose.
The tracker does not let such a crop start a track or move a label; events carry ``recon_error`` and
``low_quality``; ``/metrics`` counts them.

The gate reuses the classifier's input batch: it dequantizes it (one function,
:func:`edge_fer.classify.dequantize_values`) and re-quantizes it for the autoencoder's own input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_fer.bundle import ModelMeta, read_bundle_meta_named
from edge_fer.errors import ModelError
from edge_fer.interpreter import Backend, load_interpreter
from edge_fer.preprocess import InputSpec, quantize

log = logging.getLogger(__name__)

ROLE = "autoencoder"
META_KEY = "quality_gate"
SUFFIX = "_ae.tflite"


def quality_path(bundle: str | Path) -> Path:
    """Where ``edge-fer convert --write-quality-gate`` puts the autoencoder of ``bundle``: ``<stem>_ae.tflite``."""
    p = Path(bundle)
    return p.with_name(p.stem + SUFFIX)


@dataclass(frozen=True, slots=True)
class CropQuality:
    """One crop's reconstruction error and whether it is above the gate's threshold."""

    error: float
    low: bool


class QualityGate:
    """A loaded autoencoder bundle. ``errors(batch, spec)`` -> MSE per crop; ``assess`` adds the flag."""

    def __init__(
        self,
        model_bytes: bytes,
        *,
        source: str = "autoencoder",
        threshold: float | None = None,
        device: str = "cpu",
        threads: int | None = None,
        backend: Backend | str | None = None,
        announce: bool = True,
    ):
        """``announce=False``: no log line about the threshold (``convert --write-quality-gate`` loads the gate to
        measure errors before any threshold exists, then logs the calibrated one itself)."""
        self.source = source
        self.meta: ModelMeta = read_bundle_meta_named(model_bytes, source)
        role = (self.meta.quantization or {}).get("model_role")
        if role != ROLE:
            raise ModelError(
                f"{source}: not an edge-fer autoencoder (model_role {role!r}); make it with 'edge-fer convert --write-quality-gate'"
            )
        try:
            loaded = load_interpreter(model_content=model_bytes, device=device, threads=threads, backend=backend)
        except ModelError as e:
            raise ModelError(f"{source}: {e}") from None
        self.interpreter = loaded.interpreter
        inp, out = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError(f"{source}: expected 1 input and 1 output tensor, got {len(inp)} and {len(out)}")
        self._in, self._out = inp[0], out[0]
        shape = tuple(int(v) for v in self._in["shape"])
        if tuple(int(v) for v in self._out["shape"]) != shape:
            raise ModelError(f"{source}: output shape {list(self._out['shape'])} differs from the input {list(shape)}")
        m = self.meta
        if shape[1:] != (m.input_height, m.input_width, m.input_channels):
            raise ModelError(f"{source}: input tensor shape {list(shape)} does not match the metadata")
        dtype = np.dtype(self._in["dtype"])
        scale, zp = self._in.get("quantization", (0.0, 0))
        self.input_spec = InputSpec(shape[1], shape[2], shape[3], dtype, float(scale), int(zp))
        self._out_q = tuple(self._out.get("quantization", (0.0, 0)))
        self._batch = shape[0]
        self._can_resize = True
        gate = (m.metrics or {}).get(META_KEY) or {}
        stored = gate.get("threshold")
        if threshold is None or threshold <= 0:
            if stored is None:
                raise ModelError(f"{source}: no calibrated threshold in its metadata; set quality.threshold")
            threshold = float(stored)
        self.threshold = float(threshold)
        self.calibration = gate
        if not announce:
            return
        log.info(
            "quality gate %s: threshold %.5f (%s)",
            source,
            self.threshold,
            "config"
            if stored is None or float(stored) != self.threshold
            else f"p{gate.get('percentile', '?')} of {gate.get('split', 'validation')} faces",
        )

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> QualityGate:
        p = Path(path)
        from edge_fer.fsutil import read_model_bytes

        data = read_model_bytes(p, "quality model")  # a FIFO, a device or a huge file: refused before reading
        return cls(data, source=str(p), **kwargs)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if n != self._batch and self._can_resize:
            try:
                self.interpreter.resize_tensor_input(self._in["index"], [n, *self._in["shape"][1:]], strict=False)
                self.interpreter.allocate_tensors()
                self._batch = n
                self._out = self.interpreter.get_output_details()[0]
            except (ValueError, RuntimeError, TypeError):
                self._can_resize = False
                self.interpreter.resize_tensor_input(self._in["index"], [1, *self._in["shape"][1:]])
                self.interpreter.allocate_tensors()
                self._batch = 1
        if n != self._batch:
            return np.concatenate([self._invoke(x[i : i + 1]) for i in range(n)])
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"]).copy()

    def errors_float(self, x: np.ndarray) -> np.ndarray:
        """Reconstruction MSE per crop of float model inputs ``x`` (N, H, W, C)."""
        from edge_fer.classify import dequantize_values

        if len(x) == 0:
            return np.zeros(0, np.float32)
        x = np.ascontiguousarray(x, dtype=np.float32)
        s = self.input_spec
        rec = dequantize_values(self._invoke(quantize(x, s.dtype, s.scale, s.zero_point)), *self._out_q)
        return np.mean((rec.reshape(len(x), -1) - x.reshape(len(x), -1)) ** 2, axis=1).astype(np.float32)

    def errors(self, batch: np.ndarray, spec: InputSpec) -> np.ndarray:
        """Reconstruction MSE per crop of a classifier input batch (in ``spec``'s dtype)."""
        from edge_fer.classify import dequantize_values

        return self.errors_float(dequantize_values(batch, spec.scale, spec.zero_point))

    def assess(self, batch: np.ndarray, spec: InputSpec) -> list[CropQuality]:
        return [CropQuality(round(float(e), 6), bool(e > self.threshold)) for e in self.errors(batch, spec)]

    def describe(self) -> str:
        return f"{Path(self.source).name} (threshold {self.threshold:.5f})"


def gate_from_config(
    qcfg, model_path: str | Path | None, *, device: str = "cpu", threads: int | None = None
) -> QualityGate | None:
    """The gate a config asks for (``[quality]``), or None.

    ``enabled`` and no ``model``: ``<bundle>_ae.tflite`` next to the classifier bundle when it
    exists, else no gate (logged). A ``model`` that is named but missing is a :class:`ModelError`."""
    if qcfg is None or not qcfg.enabled:
        return None
    if qcfg.model:
        path = Path(qcfg.model)
    else:
        if not model_path:
            log.info("quality gate: the shipped model has no autoencoder; gate off (set quality.model)")
            return None
        path = quality_path(model_path)
        if not path.is_file():
            log.info(
                "quality gate: no %s next to the model; gate off ('edge-fer convert --write-quality-gate' makes one)",
                path.name,
            )
            return None
    # the autoencoder always runs on the CPU interpreter: it has transposed convolutions
    return QualityGate.from_file(path, threshold=qcfg.threshold or None, device="cpu", threads=threads)
