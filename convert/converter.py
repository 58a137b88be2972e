"""``edge-fer convert``: run directory -> verified full-int8 TFLite bundle + report.

Steps: resolve the source (run dir or ``.keras``) and check the outputs are writable (before any
heavy work) -> load model + metadata -> class-stratified calibration sample of real crops ->
full-int8 conversion -> audit (every tensor int8/uint8 except int32 biases/params, else refuse) ->
float Keras vs int8 LiteRT on held-out crops -> embed metadata -> write every file atomically
(temp file + rename) -> Edge TPU compiler when installed -> report -> max-drop gate.

Exit codes through the CLI: 2 for bad input (:class:`EdgeFerError`), 3 when the accuracy gate fails
(:class:`AccuracyDropError`; the model and report are still written, the report says ``passed: false``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_fer.bundle import ModelMeta, read_bundle_meta
from edge_fer.errors import DataError, EdgeFerError, ModelError

log = logging.getLogger(__name__)

REPORT_FORMAT = "edge-fer-convert-report"
REPORT_VERSION = 1
IO_TYPES = ("int8", "uint8")


class AccuracyDropError(EdgeFerError):
    """The int8 model lost more accuracy than ``--max-drop`` allows (outputs are still written)."""

    exit_code = 3
    report: dict[str, Any] | None = None


@dataclass
class ConvertOptions:
    source: Path
    out: Path
    report: Path | None = None
    io: str = "int8"
    calib_samples: int = 300
    calib_data: Path | None = None
    eval_data: Path | None = None
    max_drop: float = 1.0
    write_float: bool = False
    decoder: bool = False
    quality: bool = False  # also the stage-1 autoencoder as <out>_ae.tflite, the crop-quality gate
    quality_percentile: float = 99.0
    seed: int | None = None
    latency_runs: int = 200
    compile_edgetpu: bool = True
    flip_average: bool = False  # the runtime averages each crop with its mirror image (stored in the bundle)


@dataclass
class _Source:
    model_path: Path
    run_dir: Path | None
    meta: ModelMeta
    meta_note: str | None
    config: dict[str, Any] = field(default_factory=dict)


# --- inputs ---------------------------------------------------------------------------------------


def _resolve_source(src: Path) -> _Source:
    if not src.exists():
        raise ModelError(f"{src} does not exist")
    if src.is_dir():
        model_path = src / "model.keras"
        if not model_path.is_file():
            raise ModelError(f"{src} is not a run directory (no model.keras in it)")
        run_dir = src
    else:
        try:
            with src.open("rb") as f:
                head = f.read(8)
        except OSError as e:
            raise ModelError(f"cannot read {src}: {e.strerror or e}") from None
        if head[4:8] == b"TFL3" or src.suffix.lower() == ".tflite":
            raise ModelError(
                f"{src} is already a TFLite model: convert needs the float Keras model "
                "(a run directory or a .keras file) to calibrate and verify; re-quantizing a .tflite is not supported"
            )
        if src.suffix.lower() != ".keras" and head[:4] != b"PK\x03\x04":
            raise ModelError(f"{src} is not a model (expected a run directory or a Keras .keras file)")
        model_path, run_dir = src, None
    base = run_dir or model_path.parent
    meta_path = base / "metadata.json"
    if meta_path.is_file():
        meta, note = ModelMeta.load(meta_path), None
    else:
        meta, note = ModelMeta(), f"no metadata.json next to {model_path.name}: assumed the edge-fer defaults"
        log.warning("%s", note)
    config: dict[str, Any] = {}
    cfg_path = base / "config.json"
    if cfg_path.is_file():
        try:
            config = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot read {cfg_path}: {e}") from None
        if not isinstance(config, dict):
            raise ModelError(f"{cfg_path}: not a JSON object")
    return _Source(model_path, run_dir, meta, note, config)


def _check_writable(path: Path, what: str) -> None:
    if path.is_dir():
        raise EdgeFerError(f"{what} {path} is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EdgeFerError(f"cannot write {what} {path}: folder {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise EdgeFerError(f"cannot write {what} {path}: {e.strerror or e}") from None


def _config_data(src: _Source) -> tuple[Path | None, str | None]:
    """The dataset named in the run's config.json, resolved (cwd, run dir, its parent); with a
    reason when it is named but cannot be found."""
    raw = src.config.get("data")
    if not raw:
        return None, "the run's config.json names no dataset"
    p = Path(str(raw)).expanduser()
    if p.exists():
        return p, None
    base = src.run_dir or src.model_path.parent
    if not p.is_absolute():
        for cand in (base / p, base.parent / p):
            if cand.exists():
                return cand, None
    return None, f"the run's dataset {raw!r} (config.json) was not found"


# --- outputs --------------------------------------------------------------------------------------


class _Staged:
    """Files written to temp names in their target folder, renamed into place together."""

    def __init__(self) -> None:
        self._items: list[tuple[Path, Path]] = []

    def add(self, target: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise EdgeFerError(f"cannot write {target}: {e.strerror or e}") from None
        self._items.append((Path(tmp), target))

    def commit(self) -> None:
        for tmp, target in self._items:
            os.replace(tmp, target)
        self._items.clear()

    def discard(self) -> None:
        for tmp, _ in self._items:
            tmp.unlink(missing_ok=True)
        self._items.clear()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(target: Path, data: bytes) -> None:
    s = _Staged()
    try:
        s.add(target, data)
        s.commit()
    finally:
        s.discard()


def sibling(out: Path, suffix: str) -> Path:
    """``model.tflite`` -> ``model<suffix>`` (e.g. ``_float.tflite``)."""
    return out.with_name(out.stem + suffix)


# --- helpers --------------------------------------------------------------------------------------


def _io_quant(detail: dict) -> dict[str, Any]:
    scale, zp = detail["quantization"]
    return {
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": float(scale),
        "zero_point": int(zp),
        "shape": [int(d) for d in detail["shape"]],
    }


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("edge-fer", "tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    return {"accuracy": round(m["accuracy"], 6), "macro_f1": round(m["macro_f1"], 6), "n": m["n"]}


# --- the conversion -------------------------------------------------------------------------------


def convert_run(opts: ConvertOptions) -> dict[str, Any]:
    """Convert, verify, write. Returns the report dict; raises :class:`AccuracyDropError` after
    writing everything when the int8 accuracy drop exceeds ``opts.max_drop`` points."""
    if opts.io not in IO_TYPES:
        raise EdgeFerError(f"--io must be one of {', '.join(IO_TYPES)}, got {opts.io!r}")
    if opts.calib_samples < 1:
        raise DataError(f"--calib-samples must be at least 1, got {opts.calib_samples}")
    src = _resolve_source(Path(opts.source))
    out = Path(opts.out)
    report_path = Path(opts.report) if opts.report else sibling(out, "_report.json")
    float_path = sibling(out, "_float.tflite") if opts.write_float else None
    decoder_path = sibling(out, "_decoder.tflite") if opts.decoder else None
    quality_path = sibling(out, "_ae.tflite") if opts.quality else None
    targets = [p for p in (out, report_path, float_path, decoder_path, quality_path) if p is not None]
    if len({p.resolve() for p in targets}) != len(targets):
        raise EdgeFerError("the output, report, float, decoder and autoencoder paths must differ")
    for p, what in zip(targets, ("output", "report", "output", "output", "output")):
        _check_writable(p, what)
    if opts.decoder and src.run_dir is None:
        raise ModelError("--decoder needs a run directory (with encoder.keras and decoder.keras)")
    if opts.quality:
        if src.run_dir is None:
            raise ModelError("--quality needs a run directory (with autoencoder.keras)")
        if not (src.run_dir / "autoencoder.keras").is_file():
            raise ModelError(f"--quality: {src.run_dir / 'autoencoder.keras'} not found (the run had no autoencoder pretraining?)")
        if not 50.0 <= opts.quality_percentile <= 100.0:
            raise EdgeFerError(f"--quality-percentile must be in [50, 100], got {opts.quality_percentile}")

    from edge_fer.train._tf import require_tensorflow

    require_tensorflow("edge-fer convert")
    from edge_fer.convert import audit, data, quantize, verify
    from edge_fer.convert.metadata import embed_metadata

    meta = src.meta
    if opts.flip_average:
        meta = replace(meta, preprocessing=replace(meta.preprocessing, flip_average=True))
    seed = int(opts.seed if opts.seed is not None else src.config.get("seed", 0))
    hw = (meta.input_height, meta.input_width)

    # The model first: a bad model is reported before any data is read.
    model = quantize.load_keras_model(src.model_path)
    quantize.check_classifier(model, meta, str(src.model_path))

    cfg_data, cfg_why = _config_data(src)
    calib_src = opts.calib_data or cfg_data
    if calib_src is None:
        raise DataError(f"no calibration data: {cfg_why}; pass --calib-data PATH")
    eval_src = opts.eval_data or cfg_data or calib_src
    cache: dict = {}
    load_kw = {
        "seed": seed,
        "val_fraction": src.config.get("val_fraction"),
        "class_map": src.config.get("class_map"),
        "cache": cache,
    }
    calib_all = data.load_labeled(calib_src, "calibration", hw, **load_kw)
    data.check_labels(calib_all, meta.labels)
    eval_set = data.load_labeled(eval_src, "evaluation", hw, **load_kw)
    data.check_labels(eval_set, meta.labels)

    idx = data.stratified_sample(calib_all.y, opts.calib_samples, seed, len(meta.labels))
    calib_x = data.to_model_input(calib_all.x[idx], meta.preprocessing, meta.input_channels, field=False)
    calib_counts = np.bincount(calib_all.y[idx], minlength=len(meta.labels))
    calibration = {
        **calib_all.describe(),
        "n": int(len(idx)),
        "available": len(calib_all),
        "seed": seed,
        "stratified": "equal share per class, seeded",
        "per_class": {c: int(n) for c, n in zip(meta.labels, calib_counts)},
    }
    if len(idx) < opts.calib_samples:
        calibration["note"] = f"only {len(idx)} crops available (asked for {opts.calib_samples})"
    log.info("calibrating on %d crops from %s (%s)", len(idx), calib_all.source, calib_all.split)

    # Convert and refuse anything that is not fully integer.
    q_bytes = quantize.convert(model, calib_x, io=opts.io)
    info = audit.require_full_integer(q_bytes)

    # Verify: float Keras vs int8 LiteRT on the same held-out crops.
    eval_x = data.to_model_input(eval_set.x, meta.preprocessing, meta.input_channels)
    p_float = verify.keras_predict(model, eval_x)
    if meta.preprocessing.flip_average:  # the float reference does what the runtime does
        p_float = (p_float + verify.keras_predict(model, eval_x[:, :, ::-1])) * 0.5
    p_q = verify.classifier_predict(embed_metadata(q_bytes, meta), eval_set.x)
    m_float, m_q, agreement, delta = verify.compare(eval_set.y, p_float, p_q, meta.labels)
    drop = round(100 * (m_float["accuracy"] - m_q["accuracy"]), 4)
    passed = drop <= opts.max_drop
    lat = verify.latency_ms(q_bytes, eval_x[:1], runs=opts.latency_runs)
    lat["inferences_per_face"] = 2 if meta.preprocessing.flip_average else 1  # per invoke() above

    it = verify.make_interpreter(q_bytes)
    din, dout = verify.io_details(it)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    versions = _versions()
    evaluation = {**eval_set.describe()}
    if Path(eval_src).resolve() == Path(calib_src).resolve() and calib_all.split == eval_set.split:
        evaluation["note"] = "evaluated on the calibration data itself (not held out); pass --eval-data"

    provenance = dict(meta.provenance)
    provenance.update(
        {
            "source_run": str(src.run_dir.resolve()) if src.run_dir else None,
            "source_model": str(src.model_path.resolve()),
            "converted_at": now,
            "converter": "edge-fer convert",
            "versions": versions,
        }
    )
    if src.meta_note:
        provenance["metadata_note"] = src.meta_note
    quant = {
        "input": _io_quant(din),
        "output": _io_quant(dout),
        "weights": "int8, per-channel (conv/depthwise), per-tensor (fully connected)",
        "activations": "int8",
        "method": "post-training full-integer quantization, TFLITE_BUILTINS_INT8",
        "calibration": {k: v for k, v in calibration.items() if k != "source"} | {"source": str(calib_all.source)},
    }
    metrics = dict(meta.metrics)
    metrics["quantized"] = {
        "eval": evaluation,
        "float": _summary(m_float),
        "int8": _summary(m_q),
        "agreement": agreement,
        "agreement_count": int(round(agreement * m_float["n"])),
        "accuracy_drop_points": drop,
    }
    bundle_meta = replace(meta, quantization=quant, provenance=provenance, metrics=metrics)
    final = embed_metadata(q_bytes, bundle_meta)
    read_bundle_meta(final, str(out))  # the runtime's reader understands what we wrote

    staged = _Staged()
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "created": now,
        "source": {"run_dir": str(src.run_dir) if src.run_dir else None, "model": str(src.model_path)},
        "outputs": {"model": str(out), "report": str(report_path)},
        "params": {
            "io": opts.io,
            "calib_samples": opts.calib_samples,
            "calib_data": str(calib_src),
            "eval_data": str(eval_src),
            "max_drop": opts.max_drop,
            "seed": seed,
            "float": opts.write_float,
            "decoder": opts.decoder,
            "quality": opts.quality,
            "latency_runs": opts.latency_runs,
        },
        "calibration": calibration,
        "eval": evaluation,
        "float": m_float,
        "int8": m_q,
        "agreement": agreement,
        "agreement_count": int(round(agreement * m_float["n"])),
        "delta": delta,
        "gate": {"max_drop_points": opts.max_drop, "accuracy_drop_points": drop, "passed": passed},
        "size_bytes": len(final),
        "parameters": int(model.count_params()),
        "parameters_tflite": info["params"],
        "macs": info["macs"],
        "latency_ms": lat,
        "quantization": {"input": quant["input"], "output": quant["output"]},
        "all_int8": info["all_int8"],
        "op_counts": info["op_counts"],
        "ops": info["ops"],
        "edgetpu": dict(info["edgetpu"]),
        "versions": versions,
    }
    try:
        staged.add(out, final)
        if float_path is not None:
            f_bytes = quantize.convert(model, None)
            f_meta = replace(
                bundle_meta,
                quantization={
                    "input": _io_quant(verify.io_details(verify.make_interpreter(f_bytes))[0]),
                    "output": _io_quant(verify.io_details(verify.make_interpreter(f_bytes))[1]),
                    "method": "none (float32 reference)",
                },
            )
            f_final = embed_metadata(f_bytes, f_meta)
            staged.add(float_path, f_final)
            report["outputs"]["float"] = str(float_path)
            report["float_size_bytes"] = len(f_final)
        if decoder_path is not None:
            d_final, d_report = _convert_decoder(src, calib_x, opts.io, bundle_meta)
            staged.add(decoder_path, d_final)
            report["outputs"]["decoder"] = str(decoder_path)
            report["decoder"] = d_report
        if quality_path is not None:
            adapted = src.run_dir / "calibration.npz" if src.run_dir is not None else None
            if adapted is not None and adapted.is_file() and (src.run_dir / "adapt.json").is_file():
                # an adapted run (edge-fer adapt): the threshold comes from the new camera's own crops
                val_set = data.load_labeled(adapted, "validation", hw)
                val_set.split = "the adapted camera's crops"
            else:
                val_set = data.load_labeled(opts.eval_data or cfg_data or calib_src, "validation", hw, **load_kw)
            a_final, a_report = _convert_autoencoder(src, calib_x, val_set, opts, bundle_meta)
            staged.add(quality_path, a_final)
            report["outputs"]["quality"] = str(quality_path)
            report["quality"] = a_report
        staged.commit()
    finally:
        staged.discard()

    if opts.compile_edgetpu:
        report["edgetpu"]["compiler"] = audit.run_edgetpu_compiler(out, out.parent)
    else:
        report["edgetpu"]["compiler"] = {"available": None, "message": "skipped"}
    _atomic_write(report_path, (json.dumps(report, indent=2) + "\n").encode())
    if not passed:
        err = AccuracyDropError(
            f"int8 accuracy drop {drop:.2f} points exceeds --max-drop {opts.max_drop:.2f} "
            f"(float {100 * m_float['accuracy']:.2f}%, int8 {100 * m_q['accuracy']:.2f}%); "
            f"{out} and {report_path} were written"
        )
        err.report = report
        raise err
    return report


def _convert_decoder(src: _Source, calib_x: np.ndarray, io: str, meta: ModelMeta) -> tuple[bytes, dict[str, Any]]:
    """The autoencoder's decoder as its own int8 model, calibrated on the encoder's features of
    the same real crops; reconstruction MSE float vs int8 on those crops."""
    from edge_fer.convert import audit, quantize, verify
    from edge_fer.convert.metadata import embed_metadata

    assert src.run_dir is not None
    enc_p, dec_p = src.run_dir / "encoder.keras", src.run_dir / "decoder.keras"
    for p in (enc_p, dec_p):
        if not p.is_file():
            raise ModelError(f"--decoder: {p} not found (the run had no autoencoder pretraining?)")
    enc, dec = quantize.load_keras_model(enc_p), quantize.load_keras_model(dec_p)
    feats = np.asarray(enc.predict(calib_x, batch_size=256, verbose=0), dtype=np.float32)
    want = tuple(int(d) for d in dec.inputs[0].shape[1:])
    if tuple(feats.shape[1:]) != want:
        raise ModelError(f"--decoder: encoder output {feats.shape[1:]} does not fit the decoder input {want}")
    d_bytes = quantize.convert(dec, feats, io=io)
    info = audit.require_full_integer(d_bytes, "the converted decoder")
    rec_f = np.asarray(dec.predict(feats, batch_size=256, verbose=0), dtype=np.float32).reshape(len(feats), -1)
    rec_q = verify.tflite_predict(d_bytes, feats)
    target = calib_x.reshape(len(calib_x), -1)
    it = verify.make_interpreter(d_bytes)
    din, dout = verify.io_details(it)
    d_meta = replace(
        meta,
        quantization={"input": _io_quant(din), "output": _io_quant(dout), "model_role": "decoder"},
        provenance={**meta.provenance, "role": "decoder", "source_model": str(dec_p.resolve())},
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


def _convert_autoencoder(src: _Source, calib_x: np.ndarray, val_set: Any, opts: ConvertOptions,
                         meta: ModelMeta) -> tuple[bytes, dict[str, Any]]:
    """The stage-1 autoencoder (image -> reconstruction) as its own int8 model: the crop-quality gate
    (:mod:`edge_fer.quality`). Its threshold is a percentile of the int8 reconstruction MSE of the
    validation faces, measured through the runtime's own gate, and stored in its metadata."""
    from edge_fer.convert import audit, data, quantize
    from edge_fer.convert.metadata import embed_metadata
    from edge_fer.quality import META_KEY, ROLE, QualityGate

    assert src.run_dir is not None
    ae_p = src.run_dir / "autoencoder.keras"
    ae = quantize.load_keras_model(ae_p)
    want = (None, meta.input_height, meta.input_width, meta.input_channels)
    if tuple(_shape_of(ae.inputs[0])) != want or tuple(_shape_of(ae.outputs[0])) != want:
        raise ModelError(f"--quality: {ae_p} does not map {want[1:]} images to {want[1:]} reconstructions")
    a_bytes = quantize.convert(ae, calib_x, io=opts.io)
    info = audit.require_full_integer(a_bytes, "the converted autoencoder")
    from edge_fer.convert import verify

    din, dout = verify.io_details(verify.make_interpreter(a_bytes))
    val_x = data.to_model_input(val_set.x, meta.preprocessing, meta.input_channels)
    rec_f = np.asarray(ae.predict(val_x, batch_size=256, verbose=0), dtype=np.float32)
    err_f = np.mean((rec_f - val_x).reshape(len(val_x), -1) ** 2, axis=1)
    role_meta = replace(meta, quantization={"input": _io_quant(din), "output": _io_quant(dout), "model_role": ROLE})
    gate = QualityGate(embed_metadata(a_bytes, role_meta), source=str(ae_p), threshold=1.0)
    err_q = gate.errors_float(val_x)
    pct = {str(p): round(float(np.percentile(err_q, p)), 6) for p in (50, 90, 95, 99, 99.5)}
    threshold = round(float(np.percentile(err_q, opts.quality_percentile)), 6)
    calib = {
        "threshold": threshold,
        "percentile": opts.quality_percentile,
        "split": val_set.split,
        "n": int(len(val_x)),
        "error": "mean squared error of the int8 reconstruction, in model-input units (pixels * scale + offset)",
        "percentiles": pct,
        "mse_float_mean": round(float(err_f.mean()), 6),
        "mse_int8_mean": round(float(err_q.mean()), 6),
    }
    a_meta = replace(
        role_meta,
        provenance={**meta.provenance, "role": ROLE, "source_model": str(ae_p.resolve())},
        metrics={**meta.metrics, META_KEY: calib},
    )
    final = embed_metadata(a_bytes, a_meta)
    return final, {"size_bytes": len(final), **calib, "all_int8": info["all_int8"],
                   "edgetpu_compatible": info["edgetpu"]["compatible"]}


def _shape_of(t: Any) -> tuple:
    return tuple(None if d is None else int(d) for d in t.shape)


# --- terminal summary -----------------------------------------------------------------------------


def format_table(report: dict[str, Any]) -> str:
    f, q, d = report["float"], report["int8"], report["delta"]
    ev = report["eval"]
    rows = [
        f"{'':<14}{'float':>10}{'int8':>10}{'change':>12}",
        f"{'accuracy':<14}{100 * f['accuracy']:>9.2f}%{100 * q['accuracy']:>9.2f}%{d['accuracy_points']:>+9.2f} pt",
        f"{'macro-F1':<14}{100 * f['macro_f1']:>9.2f}%{100 * q['macro_f1']:>9.2f}%{d['macro_f1_points']:>+9.2f} pt",
    ]
    for c, pf in f["per_class"].items():
        rows.append(
            f"{'F1 ' + c:<14}{100 * pf['f1']:>9.2f}%{100 * q['per_class'][c]['f1']:>9.2f}%"
            f"{d['per_class_f1_points'][c]:>+9.2f} pt"
        )
    lat = report["latency_ms"]
    tpu = report["edgetpu"]
    if tpu["compatible"]:
        tpu_line = f"Edge TPU audit: all {tpu['ops_total']} ops mappable, all tensors int8"
    else:
        tpu_line = (
            f"Edge TPU audit: {tpu['ops_expected_on_tpu']}/{tpu['ops_total']} ops before the first unmappable one; "
            f"{len(tpu['problems'])} problem(s), e.g. {tpu['problems'][0]}"
        )
    comp = tpu.get("compiler", {})
    if comp.get("available") is False:
        comp_line = comp["message"]
    elif comp.get("ran"):
        comp_line = f"edgetpu_compiler exit {comp['returncode']}: {comp.get('model')} (log {comp.get('log')})"
    else:
        comp_line = f"edgetpu_compiler: {comp.get('error') or comp.get('message', 'not run')}"
    gate = report["gate"]
    rows += [
        f"agreement (top-1, float vs int8): {100 * report['agreement']:.2f}% on {ev['n']} {ev['split']} crops",
        f"size {report['size_bytes']:,} B | params {report['parameters']:,} | MACs {report['macs']:,} | "
        f"latency {lat['median']:.3f} ms median ({lat['threads']} thread, {lat['runtime']})",
        tpu_line,
        comp_line,
        f"gate: accuracy drop {gate['accuracy_drop_points']:+.2f} pt vs --max-drop {gate['max_drop_points']:.2f}: "
        + ("PASS" if gate["passed"] else "FAIL"),
    ]
    return "\n".join(rows)


def options_dict(opts: ConvertOptions) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
