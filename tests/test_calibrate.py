"""Calibrated probabilities: `edge-fer convert --calibrate` (a run, and an existing bundle) and the
ECE/NLL of `edge-fer eval`, through the installed CLI, real TFLite interpreters and tiny data.

The model is deliberately over-smoothed: the tiny run of test_convert with its last layer's kernel
and bias divided by 4, so that its top probability is far below its accuracy (what label smoothing and
softened teacher targets do to the shipped model). Calibration must bring its ECE down without
changing a single prediction.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_fer import calibration
from tests.test_cli_errors import assert_one_line_error, cli

SMOOTHING = 4.0


# --- the metrics, by hand ---------------------------------------------------------------------------


def test_ece_and_nll_against_a_hand_computed_example():
    # top probabilities 0.95 (right), 0.62 (wrong), 0.64 (right), 0.71 (right), 0.83 (right); 15 bins:
    # 0.95 -> bin 14, 0.62 and 0.64 -> bin 9 (accuracy 0.5, confidence 0.63), 0.71 -> 10, 0.83 -> 12
    p = np.array(
        [
            [0.95, 0.03, 0.02],
            [0.62, 0.38, 0.00],
            [0.20, 0.16, 0.64],
            [0.29, 0.71, 0.00],
            [0.83, 0.10, 0.07],
        ]
    )
    y = np.array([0, 1, 2, 1, 0])
    want_ece = (0.05 + 2 * abs(0.5 - 0.63) + 0.29 + 0.17) / 5
    assert calibration.ece(p, y) == pytest.approx(want_ece)
    want_nll = -(np.log(0.95) + np.log(0.38) + np.log(0.64) + np.log(0.71) + np.log(0.83)) / 5
    assert calibration.nll(p, y) == pytest.approx(want_nll)
    s = calibration.summary(p, y)
    assert s["accuracy"] == pytest.approx(0.8) and s["mean_confidence"] == pytest.approx(0.75)
    bins = calibration.reliability(p, y)
    assert [b["n"] for b in bins][9] == 2 and sum(b["n"] for b in bins) == 5
    # a quantized probability of exactly 0 for the true class costs -log(1e-6), not infinity
    assert calibration.nll(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(-np.log(calibration.NLL_EPS))


# --- a deliberately over-smoothed tiny run ------------------------------------------------------------


@pytest.fixture(scope="module")
def smooth(tmp_path_factory):
    import keras

    from tests.test_convert import build_run

    root = tmp_path_factory.mktemp("calibrate")
    paths = build_run(root)
    model = paths["model"]
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel / SMOOTHING, bias / SMOOTHING])
    run = root / "smooth_run"
    shutil.copytree(paths["run"], run)
    model.save(run / "model.keras")
    assert isinstance(keras.models.load_model(run / "model.keras", compile=False), keras.Model)
    common = ["--calib-samples", "70", "--latency-runs", "5", "--max-drop", "100"]
    out = {}
    variants = (
        ("cal", ["--calibrate", "--calibration-method", "temperature"]),
        ("raw", ["--no-calibrate"]),
        ("vec", ["--calibration-method", "vector", "--float"]),
    )
    for name, flags in variants:
        bundle = root / f"{name}.tflite"
        p = cli("convert", str(run), "-o", str(bundle), *flags, *common, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        out[name] = bundle
        out[name + "_stdout"] = p.stdout
    return {**paths, **out, "root": root}


def _probs(bundle: Path, x: np.ndarray) -> np.ndarray:
    from edge_fer.classify import Classifier

    clf = Classifier.from_file(bundle, device="cpu", threads=1)
    return clf.predict_raw(clf.prepare_crops(list(x)))


def _test_split(smooth) -> tuple[np.ndarray, np.ndarray]:
    with np.load(smooth["test_npz"]) as z:
        return z["x"], z["y"]


def _same_predictions(p_raw: np.ndarray, p_cal: np.ndarray) -> None:
    """The calibrated argmax is the uncalibrated one wherever the latter is not a tie of two
    quantized outputs (a tie is decided by the sharper softmax)."""
    top2 = np.sort(p_raw, axis=1)[:, -2:]
    unique = top2[:, 1] > top2[:, 0]
    assert unique.mean() > 0.8
    np.testing.assert_array_equal(p_raw.argmax(1)[unique], p_cal.argmax(1)[unique])


@pytest.mark.train
def test_convert_calibrates_an_over_smoothed_model(smooth):
    from edge_fer.bundle import read_bundle_meta

    rep = json.loads(smooth["cal"].with_name("cal_report.json").read_text())
    cal = rep["probability_calibration"]
    assert cal["fitted_on"]["split"] == "PublicTest"  # the selection split, never the test split
    assert cal["temperature"] < 1.0  # an under-confident model is sharpened
    assert cal["after"]["ece"] < cal["before"]["ece"] - 0.1, cal
    assert cal["after"]["nll"] < cal["before"]["nll"]
    assert cal["after"]["mean_confidence"] > cal["before"]["mean_confidence"]
    png = Path(rep["outputs"]["reliability"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "temperature T=" in smooth["cal_stdout"] and "ECE" in smooth["cal_stdout"]
    meta = read_bundle_meta(smooth["cal"].read_bytes())
    assert meta.metrics["probability_calibration"]["softmax_beta"] == pytest.approx(1 / cal["temperature"], rel=1e-4)
    raw = json.loads(smooth["raw"].with_name("raw_report.json").read_text())
    assert "probability_calibration" not in raw and not smooth["raw"].with_name("raw_reliability.png").exists()

    # held out (PrivateTest of the tiny data), through the runtime: ECE drops, predictions do not change
    x, y = _test_split(smooth)
    p_raw, p_cal = _probs(smooth["raw"], x), _probs(smooth["cal"], x)
    e_raw, e_cal = calibration.ece(p_raw, y), calibration.ece(p_cal, y)
    assert e_cal < e_raw - 0.05, (e_raw, e_cal)
    assert calibration.nll(p_cal, y) < calibration.nll(p_raw, y)
    _same_predictions(p_raw, p_cal)


@pytest.mark.train
def test_eval_reports_ece_and_nll_of_the_bundle(smooth, tmp_path):
    x, y = _test_split(smooth)
    figures = {}
    for name in ("raw", "cal"):
        out = tmp_path / f"{name}.json"
        p = cli("eval", "--model", str(smooth[name]), "--data", str(smooth["data"]), "--json", str(out))
        assert p.returncode == 0, p.stderr[-2000:]
        rep = json.loads(out.read_text())
        probs = _probs(smooth[name], x)  # the same faces, straight through the classifier
        assert rep["split"] == "PrivateTest" and rep["n"] == len(y)
        assert rep["ece"] == pytest.approx(calibration.ece(probs, y), abs=1e-5)
        assert rep["nll"] == pytest.approx(calibration.nll(probs, y), abs=1e-5)
        assert rep["mean_confidence"] == pytest.approx(float(probs.max(1).mean()), abs=1e-5)
        assert sum(b["n"] for b in rep["reliability"]) == len(y) and rep["ece_bins"] == 15
        assert "ECE" in p.stdout and "NLL" in p.stdout
        figures[name] = rep
    assert figures["cal"]["ece"] < figures["raw"]["ece"]


@pytest.mark.train
def test_an_existing_bundle_is_recalibrated_with_its_metadata_kept(smooth, tmp_path):
    from edge_fer.bundle import read_bundle_meta

    out = tmp_path / "recal.tflite"
    p = cli("convert", str(smooth["raw"]), "--eval-data", str(smooth["data"]), "-o", str(out), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    rep = json.loads(out.with_name("recal_report.json").read_text())
    assert rep["schema"] == "edge-fer-convert-calibration/1"
    cal = rep["probability_calibration"]
    assert cal["after"]["ece"] < cal["before"]["ece"] - 0.1 and cal["fitted_on"]["split"] == "PublicTest"
    assert out.with_name("recal_reliability.png").read_bytes()[:4] == b"\x89PNG"
    before, after = read_bundle_meta(smooth["raw"].read_bytes()), read_bundle_meta(out.read_bytes())
    assert after.labels == before.labels and after.preprocessing == before.preprocessing
    assert after.quantization == before.quantization
    assert after.metrics["quantized"] == before.metrics["quantized"]
    assert after.metrics["probability_calibration"]["temperature"] == cal["temperature"]
    origin = after.provenance["calibrated_from"]
    assert origin == {"file": "raw.tflite", "sha256": hashlib.sha256(smooth["raw"].read_bytes()).hexdigest()}
    x, y = _test_split(smooth)
    p_raw, p_new = _probs(smooth["raw"], x), _probs(out, x)
    _same_predictions(p_raw, p_new)
    assert calibration.ece(p_new, y) < calibration.ece(p_raw, y) - 0.05
    # the same temperature as calibrating at conversion time (same faces, same objective)
    t_conv = json.loads(smooth["cal"].with_name("cal_report.json").read_text())["probability_calibration"]
    assert cal["temperature"] == pytest.approx(t_conv["temperature"], rel=0.05)


@pytest.mark.train
def test_recalibration_refuses_bad_requests(smooth, tmp_path):
    src, data = str(smooth["raw"]), str(smooth["data"])
    out = tmp_path / "x.tflite"
    assert_one_line_error(cli("convert", src, "-o", str(out)), "--eval-data")
    assert_one_line_error(cli("convert", src, "--eval-data", data, "-o", str(out), "--no-calibrate"), "recalibrate")
    assert_one_line_error(cli("convert", src, "--eval-data", data, "-o", str(out), "--float"), "--float")
    assert_one_line_error(cli("convert", src, "--eval-data", data, "-o", src), "also an input")
    assert not out.exists()


# --- per-class scales ---------------------------------------------------------------------------------


def _synthetic_logits(scales: np.ndarray, n: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``z`` and labels drawn from ``softmax(scales * z)``: a model whose calibration is exactly
    ``scales``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1, (n, len(scales)))
    s = z * scales
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = (p.cumsum(1) < rng.random((n, 1))).sum(1)
    return z, y


def test_the_fits_recover_known_scales_and_auto_prefers_one_temperature_when_that_is_the_truth():
    from edge_fer.convert.calibrate import cross_validate, fit_scales

    truth = np.array([0.5, 1.0, 2.0, 3.0, 1.5, 2.5, 1.2])
    z, y = _synthetic_logits(truth)
    np.testing.assert_allclose(fit_scales(z, y, "vector"), truth, rtol=0.12)
    cv = cross_validate(z, y)
    assert cv["vector"]["heldout_nll"] < cv["temperature"]["heldout_nll"] - 0.01, cv
    assert cv["vector"]["folds"] == 10

    same = np.full(7, 2.0)
    z, y = _synthetic_logits(same, seed=1)
    t = fit_scales(z, y, "temperature")
    assert np.ptp(t) == 0 and t[0] == pytest.approx(2.0, rel=0.08)
    cv = cross_validate(z, y)
    # one true temperature: seven free scales only fit noise, and held-out NLL says so
    assert cv["vector"]["heldout_nll"] >= cv["temperature"]["heldout_nll"] - 0.002, cv


@pytest.mark.train
def test_per_class_scales_are_folded_exactly_into_the_int8_and_float_bundles(smooth):
    from edge_fer.convert.calibrate import bundle_logits, softmax_beta

    from edge_fer.bundle import read_bundle_meta
    from edge_fer.classify import Classifier

    rep = json.loads(smooth["vec"].with_name("vec_report.json").read_text())
    cal = rep["probability_calibration"]
    assert cal["method"] == "vector" and cal["temperature"] is None and cal["softmax_beta"] == 1.0
    scales = np.array(list(cal["class_scales"].values()))
    assert len(scales) == 7 and (scales > 1).all()  # an under-confident model is sharpened, class by class
    assert cal["after"]["ece"] < cal["before"]["ece"] - 0.1 and cal["after"]["nll"] < cal["before"]["nll"]
    meta = read_bundle_meta(smooth["vec"].read_bytes())
    assert meta.metrics["probability_calibration"]["class_scales"] == cal["class_scales"]
    assert softmax_beta(smooth["vec"].read_bytes()) == 1.0

    # the fold is exact: the calibrated graph's logits are the raw graph's, times the class's scale,
    # up to one step of the (widened) output quantization
    x, y = _test_split(smooth)
    clf = Classifier.from_file(smooth["raw"], device="cpu", threads=1)
    batch = clf.prepare_crops(list(x))
    z_raw = bundle_logits(smooth["raw"].read_bytes(), batch)
    z_vec = bundle_logits(smooth["vec"].read_bytes(), batch)
    step = np.abs(np.diff(np.unique(z_vec))).min()
    assert np.abs(z_vec - z_raw * scales).max() <= 1.01 * step

    # held out, through the runtime: better calibrated than the raw softmax
    p_raw, p_vec = _probs(smooth["raw"], x), _probs(smooth["vec"], x)
    assert calibration.ece(p_vec, y) < calibration.ece(p_raw, y) - 0.05
    assert calibration.nll(p_vec, y) < calibration.nll(p_raw, y)

    # --float writes the float reference with the same scales in its weights
    f = Classifier.from_file(rep["outputs"]["float"], device="cpu", threads=1)
    p_float = f.predict_raw(f.prepare_crops(list(x)))
    assert (p_float.argmax(1) == p_vec.argmax(1)).mean() > 0.9
    assert np.abs(p_float - p_vec).mean() < 0.03


@pytest.mark.train
def test_an_unknown_calibration_method_is_one_line(smooth, tmp_path):
    p = cli(
        "convert",
        str(smooth["raw"]),
        "--eval-data",
        str(smooth["data"]),
        "-o",
        str(tmp_path / "x.tflite"),
        "--calibration-method",
        "matrix",
    )
    assert_one_line_error(p, "calibration-method")


@pytest.mark.train
def test_a_calibration_that_no_face_contradicts_is_refused_not_folded(smooth, tmp_path):
    """Recalibrating on faces the model gets all right drove the temperature toward 0 and folded it in
    (T=0.17 on one face: every score 1.0, NLL -0.0 in the report; ECE on other faces 0.16 -> 0.29)."""
    import cv2

    from edge_fer.classify import Classifier
    from tests.test_convert import make_crops

    model = smooth["raw"]
    clf = Classifier(model.read_bytes(), source="test", device="cpu", threads=1)
    x, _ = make_crops(40, seed=5)
    preds = [p.label for p in clf.predict(clf.prepare_crops(list(x)))]
    picked: dict[str, list] = {}
    for img, label in zip(x, preds):  # faces of two classes, each labelled as the model predicts it
        picked.setdefault(label, []).append(img)
    classes = [c for c in picked if len(picked[c]) >= 5][:2]
    assert len(classes) == 2, preds
    for label in classes:
        (tmp_path / "right" / label).mkdir(parents=True)
        for i, img in enumerate(picked[label][:5]):
            cv2.imwrite(str(tmp_path / "right" / label / f"{i}.png"), img)
    out = tmp_path / "re.tflite"
    r = cli("convert", str(model), "--eval-data", str(tmp_path / "right"), "-o", str(out))
    assert_one_line_error(r, "cannot fit a calibration on", "of 2 class(es), 0 misclassified")
    assert not out.exists()
