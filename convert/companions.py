"""The autoencoder's parts converted next to the classifier, each its own int8 model with metadata:
the decoder (``--decoder``) and the whole stage-1 autoencoder, the crop-quality gate (``--write-quality-gate``)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
from edge_fer.train.rundir import RunDir

from edge_fer.bundle import ModelMeta
from edge_fer.errors import ModelError

log = logging.getLogger(__name__)


def convert_decoder(run: RunDir, calib_x: np.ndarray, io: str, meta: ModelMeta) -> tuple[bytes, dict[str, Any]]:
    """The autoencoder's decoder as its own int8 model, calibrated on the encoder's features of
    the same real crops; reconstruction MSE float vs int8 on those crops."""
    from edge_fer.convert import audit, quantize, verify
    from edge_fer.convert.metadata import embed_metadata

    for p in (run.encoder, run.decoder):
        if not p.is_file():
            raise ModelError(f"--decoder: {p} not found (the run had no autoencoder pretraining?)")
    enc, dec = quantize.load_keras_model(run.encoder), quantize.load_keras_model(run.decoder)
    feats = np.asarray(enc.predict(calib_x, batch_size=256, verbose=0), dtype=np.float32)
    want = tuple(int(d) for d in dec.inputs[0].shape[1:])
    if tuple(feats.shape[1:]) != want:
        raise ModelError(f"--decoder: encoder output {feats.shape[1:]} does not fit the decoder input {want}")
    d_bytes = quantize.convert(dec, feats, io=io)
    info = audit.require_full_integer(d_bytes, "the converted decoder")
    rec_f = np.asarray(dec.predict(feats, batch_size=256, verbose=0), dtype=np.float32).reshape(len(feats), -1)
    rec_q = verify.tflite_predict(d_bytes, feats)
    target = calib_x.reshape(len(calib_x), -1)
    d_meta = replace(
        meta,
        quantization={**verify.io_quantization(d_bytes), "model_role": "decoder"},
        provenance={**meta.provenance, "role": "decoder", "source_model": str(run.decoder.resolve())},
    )
    final = embed_metadata(d_bytes, d_meta)
    return final, {
        "size_bytes": len(final),
        "input_shape": [1, *want],
        "mse_float": float(np.mean((rec_f - target) ** 2)),
        "mse_int8": float(np.mean((rec_q - target) ** 2)),
        "n": int(len(feats)),
        "all_int8": info["all_int8"],
        "edgetpu_compatible": info["edgetpu"]["compatible"],
    }


def convert_autoencoder(
    run: RunDir, calib_x: np.ndarray, val_set: Any, io: str, percentile: float, meta: ModelMeta
) -> tuple[bytes, dict[str, Any]]:
    """The stage-1 autoencoder (image -> reconstruction) as its own int8 model: the crop-quality gate
    (:mod:`edge_fer.quality`). Its threshold is a ``percentile`` of the int8 reconstruction MSE of the
    validation faces, measured through the runtime's own gate, and stored in its metadata."""
    from edge_fer.convert import audit, quantize, verify
    from edge_fer.convert.data import float_model_input
    from edge_fer.convert.metadata import embed_metadata

    from edge_fer.quality import META_KEY, ROLE, QualityGate

    ae = quantize.load_keras_model(run.autoencoder)
    want = (None, meta.input_height, meta.input_width, meta.input_channels)
    if quantize.shape_of(ae.inputs[0]) != want or quantize.shape_of(ae.outputs[0]) != want:
        raise ModelError(
            f"--write-quality-gate: {run.autoencoder} does not map {want[1:]} images to {want[1:]} reconstructions"
        )
    a_bytes = quantize.convert(ae, calib_x, io=io)
    info = audit.require_full_integer(a_bytes, "the converted autoencoder")
    val_x = float_model_input(val_set.x, meta.preprocessing, meta.input_channels)
    rec_f = np.asarray(ae.predict(val_x, batch_size=256, verbose=0), dtype=np.float32)
    err_f = np.mean((rec_f - val_x).reshape(len(val_x), -1) ** 2, axis=1)
    role_meta = replace(meta, quantization={**verify.io_quantization(a_bytes), "model_role": ROLE})
    gate = QualityGate(embed_metadata(a_bytes, role_meta), source=str(run.autoencoder), threshold=1.0, announce=False)
    err_q = gate.errors_float(val_x)
    pct = {str(p): round(float(np.percentile(err_q, p)), 6) for p in (50, 90, 95, 99, 99.5)}
    threshold = round(float(np.percentile(err_q, percentile)), 6)
    log.info(
        "quality gate %s: threshold %.5f (p%g of the int8 reconstruction error of %d %s faces)",
        run.autoencoder,
        threshold,
        percentile,
        len(val_x),
        val_set.split,
    )
    calib = {
        "threshold": threshold,
        "percentile": percentile,
        "split": val_set.split,
        "n": int(len(val_x)),
        "error": "mean squared error of the int8 reconstruction, in model-input units (pixels * scale + offset)",
        "percentiles": pct,
        "mse_float_mean": round(float(err_f.mean()), 6),
        "mse_int8_mean": round(float(err_q.mean()), 6),
    }
    a_meta = replace(
        role_meta,
        provenance={**meta.provenance, "role": ROLE, "source_model": str(run.autoencoder.resolve())},
        metrics={**meta.metrics, META_KEY: calib},
    )
    final = embed_metadata(a_bytes, a_meta)
    return final, {
        "size_bytes": len(final),
        **calib,
        "all_int8": info["all_int8"],
        "edgetpu_compatible": info["edgetpu"]["compatible"],
    }
