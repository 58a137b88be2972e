"""``edge-fer convert``: run directory -> verified full-int8 TFLite bundle + report.

Steps (:func:`convert_run`): resolve the source (run dir or ``.keras``) and check the outputs are
writable (before any heavy work) -> load model + metadata -> class-stratified calibration sample of
real crops -> full-int8 conversion -> audit (every tensor int8/uint8 except int32 biases/params, else
refuse) -> float Keras vs int8 LiteRT on held-out crops -> embed metadata -> write every file
atomically, all or none -> Edge TPU compiler when installed -> report -> max-drop gate. With
``--calibrate`` (the default) a temperature is fitted on the selection split right after quantization
and folded into the bundle's softmax (:mod:`edge_fer.convert.calibrate`), before anything is verified.

Exit codes through the CLI: 2 for bad input (:class:`EdgeFerError`), 3 when the accuracy gate fails
(:class:`AccuracyDropError`; the model and report are still written, the report says ``passed: false``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import platform
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from edge_fer.convert.options import ConvertOptions
from edge_fer.convert.outputs import OutputPaths, StagedFiles
from edge_fer.convert.report import AccuracyDropError, ConvertReport, summary
from edge_fer.convert.source import ConvertSource, resolve_source

from edge_fer import jsondoc
from edge_fer.bundle import ModelMeta, read_bundle_meta
from edge_fer.errors import DataError, ModelError

log = logging.getLogger(__name__)

__all__ = ["AccuracyDropError", "ConvertOptions", "ConvertReport", "convert_run"]


def convert_run(opts: ConvertOptions) -> ConvertReport:
    """Convert, verify, write. Returns the report; raises :class:`AccuracyDropError` after writing
    everything when the int8 accuracy drop exceeds ``opts.max_drop`` points."""
    opts.validate()
    src, paths = _check_inputs(opts)
    from edge_fer.train._tf import require_tensorflow

    require_tensorflow("edge-fer convert")
    from edge_fer.convert import quantize
    from edge_fer.convert.metadata import embed_metadata

    meta = src.meta
    if opts.flip_average:
        meta = replace(meta, preprocessing=replace(meta.preprocessing, flip_average=True))
    if opts.margin is not None:
        meta = replace(meta, preprocessing=replace(meta.preprocessing, margin=float(opts.margin)))
    # The model first: a bad model is reported before any data is read.
    model = quantize.load_keras_model(src.model_path)
    quantize.check_classifier(model, meta, str(src.model_path))
    data = _Data.load(opts, src, meta)
    q_bytes, info = _quantize(model, data.calib_x, opts.io)
    cal, skipped = None, ""
    if opts.calibrate:
        from edge_fer.convert.calibrate import TooLittleData

        try:
            cal = _calibrate(q_bytes, data, meta, opts.calibration_method)
        except TooLittleData as e:  # on by default: a tiny or one-class selection split keeps the scores as trained
            skipped = str(e)
            log.warning("calibration skipped: %s", skipped)
    if cal is not None:
        from edge_fer.convert.calibrate import fold

        q_bytes = fold(q_bytes, cal.fit.method, cal.fit.scales)
    check = _verify(model, q_bytes, data, meta, opts)
    bundle_meta = _bundle_meta(src, q_bytes, data, check, meta, cal)
    bundle = embed_metadata(q_bytes, bundle_meta)
    read_bundle_meta(bundle, str(paths.model))  # the runtime's reader understands what we wrote
    report = _report(opts, src, paths, model, bundle, info, data, check, bundle_meta)
    if cal is not None:
        report.probability_calibration = cal.report()
    elif skipped:
        report.probability_calibration = {"skipped": skipped}
    _write_outputs(opts, src, paths, model, data, bundle, report, bundle_meta, cal)
    _compile_edgetpu(opts, paths, report)
    jsondoc.write(paths.report, report.to_dict())  # "-": stdout
    _gate(report, check, opts.max_drop, paths)
    return report


# --- 1. inputs --------------------------------------------------------------------------------------


def _check_inputs(opts: ConvertOptions) -> tuple[ConvertSource, OutputPaths]:
    """The source and every output path, checked before TensorFlow is even imported."""
    src = resolve_source(Path(opts.source))
    paths = OutputPaths.plan(
        Path(opts.out),
        Path(opts.report) if opts.report else None,
        opts.write_float,
        opts.decoder,
        opts.quality,
        opts.calibrate,
    )
    paths.check()
    if opts.decoder:
        src.require_run_dir("--decoder", "encoder.keras", "decoder.keras")
    if opts.quality:
        run = src.require_run_dir("--write-quality-gate", "autoencoder.keras")
        if not run.autoencoder.is_file():
            raise ModelError(
                f"--write-quality-gate: {run.autoencoder} not found (the run had no autoencoder pretraining?)"
            )
    return src, paths


@dataclass
class _Data:
    """The calibration sample and the held-out evaluation crops."""

    calib_src: Path
    eval_src: Path
    calib_x: np.ndarray  # float model input of the sample
    calibration: dict[str, Any]  # the report's description of the sample
    eval_set: Any  # edge_fer.convert.data.LabeledImages
    evaluation: dict[str, Any]  # the report's description of the evaluation crops
    load_kw: dict[str, Any]
    seed: int
    eval_flag: str | None  # "--eval-data" when the evaluation data was given: errors about it name it

    @classmethod
    def load(cls, opts: ConvertOptions, src: ConvertSource, meta: ModelMeta) -> _Data:
        from edge_fer.convert import data

        seed = int(opts.seed if opts.seed is not None else src.config.get("seed", 0))
        hw = (meta.input_height, meta.input_width)
        cfg_data, cfg_why = src.config_data()
        calib_src = opts.calib_data or cfg_data
        if calib_src is None:
            raise DataError(f"no calibration data: {cfg_why}; pass --calib-data PATH")
        eval_src = opts.eval_data or cfg_data or calib_src
        load_kw = {
            "seed": seed,
            "val_fraction": src.config.get("val_fraction"),
            "class_map": src.config.get("class_map"),
            "cache": {},
        }
        calib_flag = "--calib-data" if opts.calib_data else None
        eval_flag = "--eval-data" if opts.eval_data else None
        calib_all = data.load_labeled(calib_src, "calibration", hw, flag=calib_flag, **load_kw)
        data.check_labels(calib_all, meta.labels, calib_flag)
        eval_set = data.load_labeled(eval_src, "evaluation", hw, split=opts.eval_split, flag=eval_flag, **load_kw)
        data.check_labels(eval_set, meta.labels, eval_flag)

        idx = data.stratified_sample(calib_all.y, opts.calib_samples, seed, len(meta.labels))
        calib_x = data.float_model_input(calib_all.x[idx], meta.preprocessing, meta.input_channels, field=False)
        counts = np.bincount(calib_all.y[idx], minlength=len(meta.labels))
        calibration = {
            **calib_all.describe(),
            "n": int(len(idx)),
            "available": len(calib_all),
            "seed": seed,
            "stratified": "equal share per class, seeded",
            "per_class": {c: int(n) for c, n in zip(meta.labels, counts)},
        }
        if len(idx) < opts.calib_samples:
            calibration["note"] = f"only {len(idx)} crops available (asked for {opts.calib_samples})"
        log.info("calibrating on %d crops from %s (%s)", len(idx), calib_all.source, calib_all.split)
        evaluation = eval_set.describe()
        if Path(eval_src).resolve() == Path(calib_src).resolve() and calib_all.split == eval_set.split:
            evaluation["note"] = "evaluated on the calibration data itself (not held out); pass --eval-data"
        return cls(
            Path(calib_src), Path(eval_src), calib_x, calibration, eval_set, evaluation, load_kw, seed, eval_flag
        )


# --- 2. conversion and verification ----------------------------------------------------------------


def _quantize(model: Any, calib_x: np.ndarray, io: str) -> tuple[bytes, dict[str, Any]]:
    """Full-integer conversion and its audit; anything that is not fully integer is refused."""
    from edge_fer.convert import audit, quantize

    q_bytes = quantize.convert(model, calib_x, io=io)
    return q_bytes, audit.require_full_integer(q_bytes)


@dataclass
class _Calibration:
    """The calibration fitted on the selection split (:func:`edge_fer.convert.calibrate.fit_calibration`)."""

    fit: Any  # edge_fer.convert.calibrate.Fit
    fitted_on: dict[str, Any]
    png: bytes

    def report(self) -> dict[str, Any]:
        return dict(self.fit.report(self.fitted_on))


def _calibrate(q_bytes: bytes, data: _Data, meta: ModelMeta, method: str) -> _Calibration:
    """Fit the calibration on the selection split (through the int8 graph's own logits)."""
    from edge_fer.convert import calibrate
    from edge_fer.convert.metadata import embed_metadata

    faces = _selection_faces(data, meta)
    fit = calibrate.fit_calibration(embed_metadata(q_bytes, meta), faces.x, faces.y, method)
    fitted_on = {**faces.describe(), "source": str(faces.source)}
    if faces.split == data.eval_set.split and str(faces.source) == str(data.eval_set.source):
        fitted_on["note"] = (
            "fitted on the verification split itself (--eval-split val, a .npz, or held-out data without a selection split)"
        )
    png = calibrate.reliability_png(fit, f"int8 bundle, {faces.split} (n={len(faces)})")
    return _Calibration(fit, fitted_on, png)


@dataclass
class _Check:
    """Float Keras vs the int8 bundle in the runtime's classifier, on the same held-out crops."""

    float_metrics: dict[str, Any]
    int8_metrics: dict[str, Any]
    agreement: float
    delta: dict[str, Any]
    drop: float
    passed: bool
    latency: dict[str, Any]

    @property
    def agreement_count(self) -> int:
        return int(round(self.agreement * self.float_metrics["n"]))


def _verify(model: Any, q_bytes: bytes, data: _Data, meta: ModelMeta, opts: ConvertOptions) -> _Check:
    from edge_fer.convert import verify
    from edge_fer.convert.data import float_model_input
    from edge_fer.convert.metadata import embed_metadata

    eval_set = data.eval_set
    eval_x = float_model_input(eval_set.x, meta.preprocessing, meta.input_channels)
    p_float = verify.keras_predict(model, eval_x)
    if meta.preprocessing.flip_average:  # the float reference does what the runtime does
        p_float = (p_float + verify.keras_predict(model, eval_x[:, :, ::-1])) * 0.5
    p_q = verify.classifier_predict(embed_metadata(q_bytes, meta), eval_set.x)
    m_float, m_q, agreement, delta = verify.compare(eval_set.y, p_float, p_q, meta.labels)
    drop = round(100 * (m_float["accuracy"] - m_q["accuracy"]), 4)
    lat = verify.latency_ms(q_bytes, eval_x[:1], runs=opts.latency_runs)
    lat["inferences_per_face"] = 2 if meta.preprocessing.flip_average else 1  # per invoke() above
    return _Check(m_float, m_q, agreement, delta, drop, drop <= opts.max_drop, lat)


# --- 3. the bundle's metadata and the report -------------------------------------------------------


def _bundle_meta(
    src: ConvertSource, q_bytes: bytes, data: _Data, check: _Check, meta: ModelMeta, cal: _Calibration | None
) -> ModelMeta:
    """The training metadata plus the quantization, provenance and verified metrics of this conversion."""
    from edge_fer.convert import verify

    provenance = {
        **meta.provenance,
        "source_run": str(src.run_dir.root.resolve()) if src.run_dir else None,
        "source_model": str(src.model_path.resolve()),
        "converted_at": _now(),
        "converter": "edge-fer convert",
        "versions": _versions(),
    }
    if src.meta_note:
        provenance["metadata_note"] = src.meta_note
    quant = {
        **verify.io_quantization(q_bytes),
        "weights": "int8, per-channel (conv/depthwise), per-tensor (fully connected)",
        "activations": "int8",
        "method": "post-training full-integer quantization, TFLITE_BUILTINS_INT8",
        "calibration": {k: v for k, v in data.calibration.items() if k != "source"}
        | {"source": str(data.calibration["source"])},
    }
    metrics = {
        **meta.metrics,
        "quantized": {
            "eval": data.evaluation,
            "float": summary(check.float_metrics),
            "int8": summary(check.int8_metrics),
            "agreement": check.agreement,
            "agreement_count": check.agreement_count,
            "accuracy_drop_points": check.drop,
        },
    }
    if cal is not None:
        metrics["probability_calibration"] = cal.fit.meta(cal.fitted_on)
    return replace(meta, quantization=quant, provenance=provenance, metrics=metrics)


def _report(
    opts: ConvertOptions,
    src: ConvertSource,
    paths: OutputPaths,
    model: Any,
    bundle: bytes,
    info: dict[str, Any],
    data: _Data,
    check: _Check,
    bundle_meta: ModelMeta,
) -> ConvertReport:
    return ConvertReport(
        created=bundle_meta.provenance["converted_at"],
        source={"run_dir": str(src.run_dir.root) if src.run_dir else None, "model": str(src.model_path)},
        outputs={"model": str(paths.model), "report": str(paths.report)},
        params={
            "io": opts.io,
            "calib_samples": opts.calib_samples,
            "calib_data": str(data.calib_src),
            "eval_data": str(data.eval_src),
            "eval_split": opts.eval_split,
            "max_drop": opts.max_drop,
            "seed": data.seed,
            "float": opts.write_float,
            "decoder": opts.decoder,
            "quality": opts.quality,
            "margin": bundle_meta.preprocessing.margin,
            "latency_runs": opts.latency_runs,
            "calibrate": opts.calibrate,
        },
        calibration=data.calibration,
        evaluation=data.evaluation,
        float_metrics=check.float_metrics,
        int8_metrics=check.int8_metrics,
        agreement=check.agreement,
        agreement_count=check.agreement_count,
        delta=check.delta,
        gate={"max_drop_points": opts.max_drop, "accuracy_drop_points": check.drop, "passed": check.passed},
        size_bytes=len(bundle),
        parameters=int(model.count_params()),
        parameters_tflite=info["params"],
        macs=info["macs"],
        latency_ms=check.latency,
        quantization={"input": bundle_meta.quantization["input"], "output": bundle_meta.quantization["output"]},
        all_int8=info["all_int8"],
        op_counts=info["op_counts"],
        ops=info["ops"],
        edgetpu=dict(info["edgetpu"]),
        versions=bundle_meta.provenance["versions"],
    )


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("edge-fer", "tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


# --- 4. outputs ---------------------------------------------------------------------------------------


def _write_outputs(
    opts: ConvertOptions,
    src: ConvertSource,
    paths: OutputPaths,
    model: Any,
    data: _Data,
    bundle: bytes,
    report: ConvertReport,
    bundle_meta: ModelMeta,
    cal: _Calibration | None,
) -> None:
    """The bundle and every companion model, all renamed into place together (or none)."""
    with StagedFiles() as staged:
        staged.add(paths.model, bundle)
        if paths.reliability is not None and cal is not None:
            staged.add(paths.reliability, cal.png)
            report.outputs["reliability"] = str(paths.reliability)
        if paths.float_model is not None:
            f_final = _float_bundle(model, bundle_meta, cal.fit if cal is not None else None)
            staged.add(paths.float_model, f_final)
            report.outputs["float"] = str(paths.float_model)
            report.float_size_bytes = len(f_final)
        if paths.decoder is not None:
            from edge_fer.convert.companions import convert_decoder

            assert src.run_dir is not None
            d_final, report.decoder = convert_decoder(src.run_dir, data.calib_x, opts.io, bundle_meta)
            staged.add(paths.decoder, d_final)
            report.outputs["decoder"] = str(paths.decoder)
        if paths.quality is not None:
            from edge_fer.convert.companions import convert_autoencoder

            assert src.run_dir is not None
            val_set = _quality_faces(src, data, bundle_meta)
            a_final, report.quality = convert_autoencoder(
                src.run_dir, data.calib_x, val_set, opts.io, opts.quality_percentile, bundle_meta
            )
            staged.add(paths.quality, a_final)
            report.outputs["quality"] = str(paths.quality)
        staged.commit()


def _float_bundle(model: Any, bundle_meta: ModelMeta, fit: Any) -> bytes:
    from edge_fer.convert import quantize, verify
    from edge_fer.convert.calibrate import fold
    from edge_fer.convert.metadata import embed_metadata

    f_bytes = quantize.convert(model, None)
    if fit is not None:  # the same calibration as the int8 bundle
        f_bytes = fold(f_bytes, fit.method, fit.scales)
    quant = {**verify.io_quantization(f_bytes), "method": "none (float32 reference)"}
    return embed_metadata(f_bytes, replace(bundle_meta, quantization=quant))


def _quality_faces(src: ConvertSource, data: _Data, meta: ModelMeta) -> Any:
    """The faces the quality gate's threshold is calibrated on: an adapted run's own camera crops
    (``edge-fer adapt``), else the validation faces."""
    from edge_fer.convert.data import load_labeled

    run = src.run_dir
    if run is not None and run.is_adapted:
        val_set = load_labeled(run.calibration, "validation", (meta.input_height, meta.input_width))
        val_set.split = "the adapted camera's crops"
        return val_set
    return _selection_faces(data, meta)


def _selection_faces(data: _Data, meta: ModelMeta) -> Any:
    """The held-out dataset's selection split (FER2013 PublicTest; a .npz whole)."""
    from edge_fer.convert.data import load_labeled

    hw = (meta.input_height, meta.input_width)
    return load_labeled(data.eval_src, "validation", hw, flag=data.eval_flag, **data.load_kw)


def _gate(report: ConvertReport, check: _Check, max_drop: float, paths: OutputPaths) -> None:
    """Exit 3 (after everything is written) when int8 lost more than ``--max-drop`` points."""
    if report.passed:
        return
    m_float, m_q = check.float_metrics, check.int8_metrics
    err = AccuracyDropError(
        f"int8 accuracy drop {check.drop:.2f} points exceeds --max-drop {max_drop:.2f} "
        f"(float {100 * m_float['accuracy']:.2f}%, int8 {100 * m_q['accuracy']:.2f}%); "
        f"{paths.model} and {paths.report} were written"
    )
    err.report = report
    raise err


def _compile_edgetpu(opts: ConvertOptions, paths: OutputPaths, report: ConvertReport) -> None:
    from edge_fer.convert import audit

    if opts.compile_edgetpu:
        report.edgetpu["compiler"] = audit.run_edgetpu_compiler(paths.model, paths.model.parent)
    else:
        report.edgetpu["compiler"] = {"available": None, "message": "skipped"}
