"""Temperature scaling folded into a TFLite bundle: probabilities that mean what they say.

A model trained with label smoothing or softened teacher targets is under-confident: its top
probability is far below its accuracy. Temperature scaling divides the logits by one number ``T``
fitted on the selection split (FER2013 PublicTest); the class ranking, and so every prediction, stays
the same. Here it is folded into the model itself: the TFLite ``SOFTMAX`` operator computes
``softmax(beta * x)`` and every kernel, the int8 one included, honours ``beta``, so setting
``beta = 1 / T`` in the flatbuffer calibrates the bundle with no change to the runtime and keeps
the int8 softmax in the model (and on the Edge TPU). The same edit works on a fresh conversion and
on an existing bundle whose training run is gone.

``T`` is fitted on what the device computes: the negative log-likelihood of the bundle's own
probabilities through the runtime's :class:`~edge_fer.classify.Classifier` (int8 softmax, output
quantization and all), minimised over ``beta`` by a coarse grid then a golden-section search.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_fer import calibration
from edge_fer.errors import ModelError

log = logging.getLogger(__name__)

METHOD = "temperature"
BETA_RANGE = (0.125, 16.0)  # searched in log space


# --- the flatbuffer edit ---------------------------------------------------------------------------


def _output_softmax(model: Any) -> Any:
    """The SOFTMAX operator that makes the model's (single) output, directly or through the
    QUANTIZE/DEQUANTIZE ops of a uint8 or float interface."""
    from tensorflow.lite.python import schema_py_generated as schema

    if not model.subgraphs:
        raise ModelError("the TFLite model has no subgraph")
    g = model.subgraphs[0]
    producer = {int(t): op for op in g.operators for t in (op.outputs if op.outputs is not None else [])}

    def builtin(op: Any) -> int:
        code = model.operatorCodes[op.opcodeIndex]
        return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))

    passthrough = (schema.BuiltinOperator.QUANTIZE, schema.BuiltinOperator.DEQUANTIZE)
    op = producer.get(int(g.outputs[0])) if g.outputs is not None and len(g.outputs) else None
    while op is not None and builtin(op) in passthrough:
        op = producer.get(int(op.inputs[0]))
    if op is None or builtin(op) != schema.BuiltinOperator.SOFTMAX:
        raise ModelError("the model's output is not made by a SOFTMAX operator: nothing to fold a temperature into")
    return op


def softmax_beta(model_bytes: bytes) -> float:
    """The ``beta`` of the output softmax (1.0 for a model never calibrated)."""
    from tensorflow.lite.tools import flatbuffer_utils

    op = _output_softmax(flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes)))
    return float(op.builtinOptions.beta) if op.builtinOptions is not None else 1.0


def with_softmax_beta(model_bytes: bytes, beta: float) -> bytes:
    """``model_bytes`` with the output softmax's ``beta`` set; every other byte of meaning (weights,
    quantization, the edge-fer metadata entry) is kept."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    if not (math.isfinite(beta) and beta > 0):
        raise ModelError(f"softmax beta must be a positive number, got {beta}")
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    op = _output_softmax(model)
    if op.builtinOptions is None:
        op.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
        op.builtinOptions = schema.SoftmaxOptionsT()
    op.builtinOptions.beta = float(beta)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


# --- the fit --------------------------------------------------------------------------------------


@dataclass
class Fit:
    """The fitted temperature and the selection split's figures before and after."""

    beta_before: float
    beta: float
    before: dict[str, Any]
    after: dict[str, Any]
    reliability_before: list[dict[str, Any]]
    reliability_after: list[dict[str, Any]]
    evaluations: int
    argmax_agreement: float
    probs_after: np.ndarray

    @property
    def temperature(self) -> float:
        """``T`` relative to the model's raw logits: ``softmax(logits / T)``."""
        return 1.0 / self.beta

    def meta(self, fitted_on: dict[str, Any]) -> dict[str, Any]:
        """What the bundle's metadata carries (``metrics["calibration"]``)."""
        return {
            "method": METHOD,
            "temperature": round(self.temperature, 6),
            "softmax_beta": round(self.beta, 6),
            "previous_softmax_beta": round(self.beta_before, 6),
            "objective": "NLL of the int8 bundle's own probabilities (the runtime's Classifier)",
            "fitted_on": fitted_on,
            "before": self.before,
            "after": self.after,
            "argmax_agreement": round(self.argmax_agreement, 6),
        }

    def report(self, fitted_on: dict[str, Any]) -> dict[str, Any]:
        """:meth:`meta` plus the reliability bins: what the convert report carries."""
        return {
            **self.meta(fitted_on),
            "reliability_before": self.reliability_before,
            "reliability_after": self.reliability_after,
            "passes": self.evaluations,
        }


def _golden(f: Callable[[float], float], lo: float, hi: float, iters: int) -> tuple[float, float]:
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (c, fc) if fc <= fd else (d, fd)


def bundle_probs(bundle_bytes: bytes, batch: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Probabilities of a bundle for an input batch already in its dtype, through the runtime's
    :class:`~edge_fer.classify.Classifier` (flip averaging included when the bundle asks for it)."""
    from edge_fer.classify import Classifier

    quiet = logging.getLogger("edge_fer.classify")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # one "model ..." line per candidate temperature is noise
    try:
        clf = Classifier(bundle_bytes, source="the calibrated model", device="cpu", threads=1)
    finally:
        quiet.setLevel(level)
    out = [clf.predict_raw(batch[i : i + chunk]) for i in range(0, len(batch), chunk)]
    return np.concatenate(out) if out else np.zeros((0, len(clf.labels)), np.float32)


def fit_temperature(bundle_bytes: bytes, crops: np.ndarray, y: np.ndarray, bins: int = calibration.ECE_BINS) -> Fit:
    """Fit ``beta`` on labelled uint8 crops (N, H, W) by the NLL of the bundle's own probabilities.

    ``bundle_bytes`` must carry edge-fer metadata (the Classifier reads its preprocessing)."""
    from edge_fer.classify import Classifier

    beta0 = softmax_beta(bundle_bytes)
    batch = Classifier(bundle_bytes, source="the model", device="cpu", threads=1).prepare_crops(list(crops))
    cache: dict[float, tuple[float, np.ndarray]] = {}

    def probs_at(log_beta: float) -> np.ndarray:
        key = round(log_beta, 9)
        if key not in cache:
            p = bundle_probs(with_softmax_beta(bundle_bytes, math.exp(log_beta)), batch)
            cache[key] = (calibration.nll(p, y), p)
        return cache[key][1]

    def objective(log_beta: float) -> float:
        probs_at(log_beta)
        return cache[round(log_beta, 9)][0]

    p0 = bundle_probs(bundle_bytes, batch)
    lo, hi = math.log(BETA_RANGE[0]), math.log(BETA_RANGE[1])
    grid = np.linspace(lo, hi, 8)  # steps of x1.81
    vals = [objective(float(v)) for v in grid]
    k = int(np.argmin(vals))
    best, best_val = _golden(objective, float(grid[max(0, k - 1)]), float(grid[min(len(grid) - 1, k + 1)]), 9)
    if vals[k] < best_val:
        best = float(grid[k])
    p1 = probs_at(best)
    beta = math.exp(best)
    log.info("temperature scaling: beta %.4f (T %.4f) after %d passes", beta, 1 / beta, len(cache))
    return Fit(
        beta_before=beta0,
        beta=beta,
        before=calibration.summary(p0, y, bins),
        after=calibration.summary(p1, y, bins),
        reliability_before=calibration.reliability(p0, y, bins),
        reliability_after=calibration.reliability(p1, y, bins),
        evaluations=len(cache),
        argmax_agreement=float((p0.argmax(1) == p1.argmax(1)).mean()) if len(y) else 1.0,
        probs_after=p1,
    )


# --- the reliability diagram ----------------------------------------------------------------------


def reliability_png(fit: Fit, title: str) -> bytes:
    """A reliability diagram (accuracy against mean top probability per bin, before and after) and
    the histogram of top probabilities, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hx) = plt.subplots(2, 1, figsize=(4.6, 5.6), dpi=100, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect")
    width = 1.0 / len(fit.reliability_before)
    for rows, name, fig_row, color in (
        (fit.reliability_before, "before", fit.before, "tab:red"),
        (fit.reliability_after, f"after (T={fit.temperature:.3f})", fit.after, "tab:blue"),
    ):
        pts = [(r["confidence"], r["accuracy"]) for r in rows if r["n"]]
        ax.plot(
            [c for c, _ in pts],
            [a for _, a in pts],
            "o-",
            color=color,
            ms=3,
            label=f"{name}: ECE {fig_row['ece']:.3f}, NLL {fig_row['nll']:.3f}",
        )
        centres = [(r["lo"] + r["hi"]) / 2 for r in rows]
        hx.bar(centres, [r["n"] for r in rows], width=width * 0.9, color=color, alpha=0.45)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    hx.set_xlabel("top probability")
    hx.set_ylabel("faces")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


# --- an existing bundle ---------------------------------------------------------------------------

_RUN_DIR_ONLY = (
    ("write_float", "--float"),
    ("decoder", "--decoder"),
    ("quality", "--quality"),
    ("flip_average", "--flip-average"),
    ("margin", "--margin"),
    ("calib_data", "--calib-data"),
)


def calibrate_bundle(opts: Any) -> dict[str, Any]:
    """``edge-fer convert BUNDLE.tflite --eval-data DATA -o OUT.tflite``: fit a temperature on the
    selection split of ``DATA`` and fold it into a copy of the bundle (weights, quantization and
    metadata kept; the metadata gains ``metrics["probability_calibration"]``). Writes the bundle, the
    report and the reliability diagram; returns the report document."""
    import hashlib
    from pathlib import Path

    from edge_fer.convert.outputs import OutputPaths, StagedFiles

    from edge_fer import jsondoc
    from edge_fer.bundle import read_bundle_meta, read_bundle_meta_named
    from edge_fer.errors import DataError, EdgeFerError
    from edge_fer.fsutil import refuse_output_over_inputs

    opts.validate()
    src = Path(opts.source)
    if not opts.calibrate:
        raise EdgeFerError(
            f"{src} is already a TFLite bundle: convert can only recalibrate it (drop --no-calibrate); "
            "re-quantizing needs the float Keras model (a run directory or a .keras file)"
        )
    for attr, flag in _RUN_DIR_ONLY:
        if getattr(opts, attr) not in (None, False):
            raise EdgeFerError(f"{flag} needs a run directory or a .keras file, not a .tflite bundle")
    if opts.eval_data is None:
        raise DataError(
            f"recalibrating {src} needs --eval-data DATASET: the temperature is fitted on its selection split "
            "(FER2013 PublicTest)"
        )
    refuse_output_over_inputs(opts.out, [src, opts.eval_data], "--output")
    refuse_output_over_inputs(opts.report, [src, opts.eval_data], "--json")
    paths = OutputPaths.plan(Path(opts.out), Path(opts.report) if opts.report else None, calibrate=True)
    paths.check()
    try:
        src_bytes = src.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read {src}: {e.strerror or e}") from None
    meta = read_bundle_meta_named(src_bytes, str(src))

    from edge_fer.train._tf import require_tensorflow

    require_tensorflow("edge-fer convert")
    from edge_fer.convert.converter import _now, _versions
    from edge_fer.convert.data import check_labels, load_labeled
    from edge_fer.convert.metadata import embed_metadata

    hw = (meta.input_height, meta.input_width)
    faces = load_labeled(opts.eval_data, "validation", hw, seed=int(opts.seed or 0))
    check_labels(faces, meta.labels)
    fit = fit_temperature(src_bytes, faces.x, faces.y)
    fitted_on = {**faces.describe(), "source": str(faces.source)}
    cal = fit.meta(fitted_on)
    now = _now()
    origin = {"file": src.name, "sha256": hashlib.sha256(src_bytes).hexdigest()}
    new_meta = replace_meta(meta, cal, {"calibrated_at": now, "calibrated_from": origin})
    bundle = embed_metadata(with_softmax_beta(src_bytes, fit.beta), new_meta)
    read_bundle_meta(bundle, str(paths.model))  # the runtime's reader understands what we wrote
    png = reliability_png(fit, f"{src.name}, {faces.split} (n={len(faces)})")
    assert paths.reliability is not None
    doc = jsondoc.document(
        "convert-calibration",
        {
            "source": str(src),
            "outputs": {"model": str(paths.model), "report": str(paths.report), "reliability": str(paths.reliability)},
            "params": {"eval_data": str(opts.eval_data), "seed": int(opts.seed or 0)},
            "probability_calibration": fit.report(fitted_on),
            "size_bytes": len(bundle),
            "versions": _versions(),
        },
    )
    with StagedFiles() as staged:
        staged.add(paths.model, bundle)
        staged.add(paths.reliability, png)
        if str(paths.report) != "-":
            staged.add(paths.report, jsondoc.dumps(doc).encode())
        staged.commit()
    if str(paths.report) == "-":
        jsondoc.write("-", doc)
    return doc


def replace_meta(meta: Any, cal: dict[str, Any], provenance: dict[str, Any]) -> Any:
    """``meta`` with the calibration in its metrics and ``provenance`` added."""
    from dataclasses import replace

    return replace(
        meta,
        metrics={**meta.metrics, "probability_calibration": cal},
        provenance={**meta.provenance, **provenance},
    )
