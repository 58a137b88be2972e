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
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_fer import calibration
from edge_fer.errors import DataError, ModelError

log = logging.getLogger(__name__)

METHODS = ("auto", "temperature", "vector")
FIT_METHODS = ("temperature", "vector")
BETA_RANGE = (0.125, 16.0)  # the multipliers are kept in this range
CV_REPEATS = 5


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


# --- the logits the device computes ---------------------------------------------------------------


def _producer(model: Any, tensor: int) -> Any:
    g = model.subgraphs[0]
    for op in g.operators:
        if op.outputs is not None and tensor in [int(t) for t in op.outputs]:
            return op
    return None


def _builtin(model: Any, op: Any) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))


def bundle_logits(bundle_bytes: bytes, batch: np.ndarray) -> np.ndarray:
    """The output softmax's input for each face of ``batch`` (already in the model's input dtype),
    dequantized: the logits exactly as the int8 graph computes them, before ``beta``."""
    from tensorflow.lite.tools import flatbuffer_utils

    from edge_fer.interpreter import select_backend

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(bundle_bytes))
    idx = int(_output_softmax(model).inputs[0])
    with warnings.catch_warnings():  # "intended for debugging": here it is how the logits are read
        warnings.simplefilter("ignore", UserWarning)
        interp = select_backend(None).Interpreter(
            model_content=bundle_bytes, experimental_preserve_all_tensors=True, num_threads=1
        )
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    detail = next(t for t in interp.get_tensor_details() if int(t["index"]) == idx)
    scale, zero = detail.get("quantization", (0.0, 0))
    out = []
    for i in range(len(batch)):
        interp.set_tensor(inp["index"], batch[i : i + 1])
        interp.invoke()
        raw = np.array(interp.get_tensor(idx), dtype=np.float64).reshape(1, -1)
        out.append((raw - zero) * scale if scale else raw)
    return np.concatenate(out) if out else np.zeros((0, 0))


# --- the fit --------------------------------------------------------------------------------------


def _newton(z: np.ndarray, y: np.ndarray, basis: np.ndarray, iters: int = 60) -> np.ndarray:
    """Minimise the NLL of ``softmax((basis @ theta) * z)``: convex in ``theta`` (a log-sum-exp of
    linear functions minus a linear one), so Newton's method with backtracking finds the optimum.
    ``basis`` is (K, P): a column of ones for one temperature, the identity for one scale per class."""
    n, k = z.shape
    onehot = np.eye(k)[y]

    def nll(theta: np.ndarray) -> float:
        s = z * (basis @ theta)
        m = s.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
        return float(np.mean(lse - s[np.arange(n), y]))

    theta = np.ones(basis.shape[1])
    f = nll(theta)
    for _ in range(iters):
        s = z * (basis @ theta)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g_a = ((p - onehot) * z).mean(axis=0)
        pz = p * z
        h_a = np.diag((pz * z).mean(axis=0)) - (pz.T @ pz) / n
        g, h = basis.T @ g_a, basis.T @ h_a @ basis + 1e-9 * np.eye(basis.shape[1])
        step = np.linalg.solve(h, g)
        t = 1.0
        while t > 1e-6:
            cand = theta - t * step
            fc = nll(cand)
            if fc <= f - 1e-4 * t * float(g @ step):
                break
            t /= 2
        else:
            break
        theta, done = cand, f - fc < 1e-12
        f = fc
        if done:
            break
    return basis @ theta


def fit_scales(z: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """Per-class multipliers ``a`` of the raw logits (``softmax(a * z)``) fitted by NLL: all equal
    for ``temperature`` (``a = 1/T``), one per class for ``vector``."""
    k = z.shape[1]
    basis = np.ones((k, 1)) if method == "temperature" else np.eye(k)
    a = _newton(np.asarray(z, np.float64), np.asarray(y, np.int64), basis)
    return np.clip(a, BETA_RANGE[0], BETA_RANGE[1])


def _scaled_probs(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    s = z * a
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def cross_validate(z: np.ndarray, y: np.ndarray, repeats: int = CV_REPEATS, seed: int = 0) -> dict[str, Any]:
    """Held-out NLL and ECE of each method: class-stratified halves of the selection split, each half
    fitted and scored on the other, ``repeats`` times. What ``auto`` chooses by."""
    rng = np.random.default_rng(seed)
    scores: dict[str, list[tuple[float, float]]] = {m: [] for m in FIT_METHODS}
    for _ in range(repeats):
        first = np.zeros(len(y), bool)
        for c in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == c))
            first[members[: len(members) // 2]] = True
        for tr, te in ((first, ~first), (~first, first)):
            if not tr.any() or not te.any():
                continue
            for m in FIT_METHODS:
                p = _scaled_probs(z[te], fit_scales(z[tr], y[tr], m))
                scores[m].append((calibration.nll(p, y[te]), calibration.ece(p, y[te])))
    return {
        m: {
            "heldout_nll": round(float(np.mean([s[0] for s in v])), 6) if v else None,
            "heldout_ece": round(float(np.mean([s[1] for s in v])), 6) if v else None,
            "folds": len(v),
        }
        for m, v in scores.items()
    }


@dataclass
class Fit:
    """The fitted calibration and the selection split's figures before and after (through the
    runtime, on the calibrated bundle itself)."""

    method: str  # "temperature" or "vector"
    scales: np.ndarray  # per class: softmax(scales * logits)
    labels: tuple[str, ...]
    beta_before: float
    before: dict[str, Any]
    after: dict[str, Any]
    reliability_before: list[dict[str, Any]]
    reliability_after: list[dict[str, Any]]
    argmax_agreement: float
    probs_after: np.ndarray
    requested: str = "temperature"
    selection: dict[str, Any] | None = None
    bundle: bytes = b""

    @property
    def beta(self) -> float:
        """The output softmax's ``beta``: ``1/T`` for a temperature; 1 when the scales are in the weights."""
        return float(self.scales[0]) if self.method == "temperature" else 1.0

    @property
    def temperature(self) -> float | None:
        """``T`` relative to the model's raw logits (``softmax(logits / T)``); None for per-class scales."""
        return 1.0 / float(self.scales[0]) if self.method == "temperature" else None

    def meta(self, fitted_on: dict[str, Any]) -> dict[str, Any]:
        """What the bundle's metadata carries (``metrics["probability_calibration"]``)."""
        t = self.temperature
        return {
            "method": self.method,
            "requested": self.requested,
            "temperature": round(t, 6) if t is not None else None,
            "softmax_beta": round(self.beta, 6),
            "previous_softmax_beta": round(self.beta_before, 6),
            "class_scales": {lab: round(float(a), 6) for lab, a in zip(self.labels, self.scales)},
            "objective": "NLL of the int8 graph's own logits (the output softmax's input), selection split",
            "fitted_on": fitted_on,
            "selection": self.selection,
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
        }

    def describe(self) -> str:
        if self.method == "temperature":
            return f"temperature T={self.temperature:.4f} (softmax beta {self.beta:.4f})"
        return "per-class scales " + ", ".join(f"{lab} {a:.3f}" for lab, a in zip(self.labels, self.scales))


def bundle_probs(bundle_bytes: bytes, batch: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Probabilities of a bundle for an input batch already in its dtype, through the runtime's
    :class:`~edge_fer.classify.Classifier` (flip averaging included when the bundle asks for it)."""
    from edge_fer.classify import Classifier

    quiet = logging.getLogger("edge_fer.classify")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # one "model ..." line per bundle is noise here
    try:
        clf = Classifier(bundle_bytes, source="the calibrated model", device="cpu", threads=1)
    finally:
        quiet.setLevel(level)
    out = [clf.predict_raw(batch[i : i + chunk]) for i in range(0, len(batch), chunk)]
    return np.concatenate(out) if out else np.zeros((0, len(clf.labels)), np.float32)


#: below this many faces a fitted calibration is said to be uncertain (a warning, not an error)
FEW_FIT_FACES = 100


class TooLittleData(DataError):
    """Faces on which a calibration cannot be fitted: one class, or none misclassified (the likelihood
    then grows without bound as the temperature goes to 0: every score would become 1.0)."""


def check_fit_data(z: np.ndarray, y: np.ndarray) -> None:
    """:class:`TooLittleData` unless ``y`` holds two classes or more and the logits ``z`` get at least
    one face wrong; a warning when there are fewer than :data:`FEW_FIT_FACES` faces."""
    n, classes = len(y), len(np.unique(y))
    wrong = int((np.asarray(z).argmax(1) != y).sum()) if n else 0
    if classes < 2 or wrong == 0:
        raise TooLittleData(
            f"cannot fit a calibration on {n} face(s) of {classes} class(es), {wrong} misclassified: it needs "
            "faces of 2 or more classes, some of them misclassified (with none wrong, the fit makes every score 1.0)"
        )
    if n < FEW_FIT_FACES:
        log.warning("calibration fitted on only %d faces: its scale is uncertain (a few hundred are better)", n)


def fit_calibration(
    bundle_bytes: bytes,
    crops: np.ndarray,
    y: np.ndarray,
    method: str = "auto",
    bins: int = calibration.ECE_BINS,
) -> Fit:
    """Fit the calibration on labelled uint8 crops (N, H, W) and fold it into the bundle
    (``Fit.bundle``). ``auto`` takes per-class scales when they can be folded into the last layer
    and their held-out NLL on the selection split's halves is lower; a temperature otherwise.

    ``bundle_bytes`` must carry edge-fer metadata (the Classifier reads its preprocessing)."""
    from edge_fer.classify import Classifier

    if method not in METHODS:
        raise ModelError(f"unknown calibration method {method!r} (choose from {', '.join(METHODS)})")
    clf = Classifier(bundle_bytes, source="the model", device="cpu", threads=1)
    labels = tuple(clf.labels)
    batch = clf.prepare_crops(list(crops))
    y = np.asarray(y, np.int64)
    z = bundle_logits(bundle_bytes, batch)
    check_fit_data(z, y)
    foldable = vector_foldable(bundle_bytes)
    selection: dict[str, Any] | None = None
    chosen = method
    if method == "vector" and not foldable:
        raise ModelError(
            "--calibration-method vector needs the output softmax to read a FULLY_CONNECTED layer with "
            "per-class weight scales (int8 per-channel or float): use temperature"
        )
    if method == "auto":
        selection = {"foldable_vector": foldable}
        chosen = "temperature"
        if foldable and len(np.unique(y)) == z.shape[1]:
            cv = cross_validate(z, y)
            selection["cross_validation"] = cv
            t, v = cv["temperature"]["heldout_nll"], cv["vector"]["heldout_nll"]
            if t is not None and v is not None and v < t:
                chosen = "vector"
        selection["chosen"] = chosen
    scales = fit_scales(z, y, chosen)
    new_bytes = fold(bundle_bytes, chosen, scales)
    p0 = bundle_probs(bundle_bytes, batch)
    p1 = bundle_probs(new_bytes, batch)
    fit = Fit(
        method=chosen,
        scales=scales,
        labels=labels,
        beta_before=softmax_beta(bundle_bytes),
        before=calibration.summary(p0, y, bins),
        after=calibration.summary(p1, y, bins),
        reliability_before=calibration.reliability(p0, y, bins),
        reliability_after=calibration.reliability(p1, y, bins),
        argmax_agreement=float((p0.argmax(1) == p1.argmax(1)).mean()) if len(y) else 1.0,
        probs_after=p1,
        requested=method,
        selection=selection,
        bundle=new_bytes,
    )
    log.info("calibration: %s", fit.describe())
    return fit


# --- folding the fit into the graph ---------------------------------------------------------------


def _fc_of_softmax(model: Any) -> Any:
    """The FULLY_CONNECTED op whose output the output softmax reads, or None."""
    from tensorflow.lite.python import schema_py_generated as schema

    op = _producer(model, int(_output_softmax(model).inputs[0]))
    if op is None or _builtin(model, op) != schema.BuiltinOperator.FULLY_CONNECTED:
        return None
    return op


def _vector_plan(model: Any) -> tuple[Any, Any, Any, Any] | None:
    """(fc op, weights, bias or None, output) tensors when per-class scales can be folded exactly:
    float weights, or int8 weights quantized per output channel."""
    from tensorflow.lite.python import schema_py_generated as schema

    fc = _fc_of_softmax(model)
    if fc is None:
        return None
    g = model.subgraphs[0]
    w = g.tensors[int(fc.inputs[1])]
    b = g.tensors[int(fc.inputs[2])] if len(fc.inputs) > 2 and int(fc.inputs[2]) >= 0 else None
    out = g.tensors[int(fc.outputs[0])]
    k = int(w.shape[0])
    if w.type == schema.TensorType.FLOAT32:
        return fc, w, b, out
    q = w.quantization
    if w.type != schema.TensorType.INT8 or q is None or q.scale is None or len(q.scale) != k:
        return None
    if int(q.quantizedDimension) != 0:
        return None
    if b is not None and (b.quantization is None or b.quantization.scale is None or len(b.quantization.scale) != k):
        return None
    oq = out.quantization
    if out.type in (schema.TensorType.INT8, schema.TensorType.UINT8) and (oq is None or oq.scale is None):
        return None
    return fc, w, b, out


def vector_foldable(model_bytes: bytes) -> bool:
    """Whether per-class scales can be folded into this bundle's last layer exactly."""
    from tensorflow.lite.tools import flatbuffer_utils

    try:
        return _vector_plan(flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))) is not None
    except ModelError:
        return False


def fold(model_bytes: bytes, method: str, scales: np.ndarray) -> bytes:
    """The bundle with the calibration in its graph; weights, metadata and everything else kept.

    * ``temperature``: the output softmax's ``beta`` (one number; the weights are untouched).
    * ``vector``: ``softmax(a * z)`` with ``z = W x + b``, so row ``k`` of ``W`` and ``b[k]`` are
      multiplied by ``a[k]``. For int8 weights quantized per output channel that is exact: the
      channel's weight scale and its bias scale are multiplied, the int8 and int32 values stay.
      The layer's output range is widened by ``max(a)`` so that no logit representable before
      saturates; the softmax's ``beta`` becomes 1."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    a = np.asarray(scales, np.float64)
    if method == "temperature":
        return with_softmax_beta(model_bytes, float(a[0]))
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    plan = _vector_plan(model)
    if plan is None:
        raise ModelError("per-class scales cannot be folded into this model's last layer: use a temperature")
    _fc, w, b, out = plan
    if len(a) != int(w.shape[0]):
        raise ModelError(f"{len(a)} class scales for a layer of {int(w.shape[0])} outputs")
    if w.type == schema.TensorType.FLOAT32:
        for t, shape in ((w, (len(a), -1)), (b, (len(a),))):
            if t is None:
                continue
            buf = model.buffers[int(t.buffer)]
            vals = np.frombuffer(bytes(bytearray(buf.data)), np.float32).reshape(shape) * a.reshape(
                (-1,) + (1,) * (len(shape) - 1)
            )
            buf.data = np.frombuffer(vals.astype(np.float32).tobytes(), np.uint8)
    else:
        w.quantization.scale = (np.asarray(w.quantization.scale, np.float64) * a).astype(np.float32)
        if b is not None:
            b.quantization.scale = (np.asarray(b.quantization.scale, np.float64) * a).astype(np.float32)
        if out.type != schema.TensorType.FLOAT32:
            out.quantization.scale = (np.asarray(out.quantization.scale, np.float64) * float(a.max())).astype(
                np.float32
            )
    op = _output_softmax(model)
    if op.builtinOptions is None:
        op.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
        op.builtinOptions = schema.SoftmaxOptionsT()
    op.builtinOptions.beta = 1.0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


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
        (
            fit.reliability_after,
            "after (" + (f"T={fit.temperature:.3f}" if fit.temperature else "per-class scales") + ")",
            fit.after,
            "tab:blue",
        ),
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
    """``edge-fer convert BUNDLE.tflite --eval-data DATA -o OUT.tflite``: fit the calibration on the
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
            f"recalibrating {src} needs --eval-data DATASET: the calibration is fitted on its selection split "
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
    faces = load_labeled(opts.eval_data, "validation", hw, seed=int(opts.seed or 0), flag="--eval-data")
    check_labels(faces, meta.labels, "--eval-data")
    fit = fit_calibration(src_bytes, faces.x, faces.y, opts.calibration_method)
    fitted_on = {**faces.describe(), "source": str(faces.source)}
    cal = fit.meta(fitted_on)
    now = _now()
    origin = {"file": src.name, "sha256": hashlib.sha256(src_bytes).hexdigest()}
    new_meta = replace_meta(meta, cal, {"calibrated_at": now, "calibrated_from": origin})
    bundle = embed_metadata(fit.bundle, new_meta)
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
