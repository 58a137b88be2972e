"""edge-fer convert: a tiny trained run -> verified int8 bundle; audit, metadata, agreement, gate, bad input.

Everything is tiny (a ~1k-parameter model, a few hundred 48x48 crops) so the file runs in well under
a minute on 2 cores. The crops are synthetic but class-dependent (learnable); the converter's own
rule is "real crops only", which the fixture honours by writing them as a real FER2013 CSV dataset.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.train
try:
    import keras
    import tensorflow as tf
except ImportError:  # a runtime-only install: conftest skips every test here (marked `train`)
    tf = keras = None

from edge_fer.bundle import ModelMeta, read_bundle_meta  # noqa: E402
from edge_fer.cli import main  # noqa: E402
from edge_fer.labels import LABELS  # noqa: E402

K = len(LABELS)


# --- tiny data and a tiny trained run -------------------------------------------------------------


def make_crops(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 48, 48) crops whose brightness and a bar position depend on the class."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(K):
        for _ in range(n_per_class):
            img = rng.normal(40 + 28 * c, 12, (48, 48))
            r = 4 + 6 * c
            img[r : r + 4, :] += 60
            xs.append(np.clip(img, 0, 255).astype(np.uint8))
            ys.append(c)
    x, y = np.stack(xs), np.asarray(ys, dtype=np.int64)
    order = rng.permutation(len(y))
    return x[order], y[order]


def write_fer_csv(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    lines = ["emotion,pixels,Usage"]
    for usage, (x, y) in splits.items():
        for img, lab in zip(x, y):
            lines.append(f"{int(lab)},{' '.join(str(int(v)) for v in img.ravel())},{usage}")
    path.write_text("\n".join(lines) + "\n")


def tiny_classifier(input_shape=(48, 48, 1)):
    L = keras.layers
    inp = keras.Input(input_shape)
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp)
    x = L.BatchNormalization(momentum=0.7)(x)
    x = L.ReLU()(x)
    x = L.SeparableConv2D(16, 3, strides=2, padding="same")(x)
    x = L.BatchNormalization(momentum=0.7)(x)
    x = L.ReLU()(x)
    x = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.MaxPooling2D()(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(0.1)(x)
    out = L.Dense(K, activation="softmax")(x)
    return keras.Model(inp, out)


def build_run(root: Path) -> dict[str, Path]:
    """A run directory as `edge-fer train` writes it, plus .npz copies of the splits."""
    keras.utils.set_random_seed(0)
    tr = make_crops(40, seed=1)
    va = make_crops(6, seed=2)
    te = make_crops(12, seed=3)
    data = root / "fer_tiny.csv"
    write_fer_csv(data, {"Training": tr, "PublicTest": va, "PrivateTest": te})
    np.savez(root / "train.npz", x=tr[0], y=tr[1])
    np.savez(root / "test.npz", x=te[0], y=te[1])

    run = root / "run"
    run.mkdir()
    model = tiny_classifier()
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(tr[0][..., None].astype("float32") / 255.0, tr[1], epochs=6, batch_size=32, verbose=0)
    model.save(run / "model.keras")

    # autoencoder parts (encoder: 48x48x1 -> 12x12x4, decoder back)
    L = keras.layers
    ei = keras.Input((48, 48, 1))
    e = L.Conv2D(4, 3, strides=4, padding="same", activation="relu")(ei)
    keras.Model(ei, e).save(run / "encoder.keras")
    di = keras.Input((12, 12, 4))
    d = L.Conv2DTranspose(4, 3, strides=4, padding="same", activation="relu")(di)
    d = L.Conv2D(1, 3, padding="same", activation="sigmoid")(d)
    keras.Model(di, d).save(run / "decoder.keras")

    ModelMeta(provenance={"run": "tiny-test-run"}).save(run / "metadata.json")
    (run / "config.json").write_text(json.dumps({"data": str(data), "seed": 0}))
    return {"run": run, "data": data, "train_npz": root / "train.npz", "test_npz": root / "test.npz", "model": model}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("convert")
    paths = build_run(root)
    out_dir = root / "out"
    out_dir.mkdir()
    out = out_dir / "fer_int8.tflite"
    rep = out_dir / "report.json"
    code = main(
        [
            "convert",
            str(paths["run"]),
            "--out",
            str(out),
            "--report",
            str(rep),
            "--float",
            "--decoder",
            "--calib-samples",
            "140",
            "--latency-runs",
            "20",
            "--max-drop",
            "100",
        ]
    )
    assert code == 0
    paths.update(out=out, report=rep, out_dir=out_dir, root=root)
    return paths


def cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


# --- the happy path -------------------------------------------------------------------------------


def test_report_schema(tiny):
    r = _load(tiny["report"])
    for key in ("float", "int8", "agreement", "size_bytes", "edgetpu", "params", "macs", "latency_ms", "ops"):
        assert key in r, key
    assert 0.0 <= r["float"]["accuracy"] <= 1.0 and 0.0 <= r["int8"]["accuracy"] <= 1.0
    assert r["size_bytes"] == tiny["out"].stat().st_size
    assert r["eval"]["split"] == "PrivateTest" and r["eval"]["n"] == 12 * K
    assert r["calibration"]["split"] == "Training" and r["calibration"]["n"] == 140
    assert set(r["calibration"]["per_class"].values()) == {20}  # stratified: 140 / 7 classes
    assert r["parameters"] > 0 and r["macs"] > 0 and r["latency_ms"]["p50_ms"] > 0
    assert r["gate"]["passed"] is True
    assert r["float"]["accuracy"] > 0.5  # the tiny model did learn something
    assert set(r["delta"]["per_class_f1_points"]) == set(LABELS)


def test_every_tensor_is_int8_except_int32_biases(tiny):
    from edge_fer.convert.audit import inspect_tflite

    info = inspect_tflite(tiny["out"].read_bytes())
    assert info["all_int8"]
    used = [t for t in info["tensors"] if t["role"] != "unused"]
    assert used
    for t in used:
        if t["dtype"] == "int32":
            assert t["role"] in ("bias", "param"), t
        else:
            assert t["dtype"] == "int8", t
    names = {o["op"] for o in info["ops"]}
    assert "DEQUANTIZE" not in names and "CONV_2D" in names
    for o in _load(tiny["report"])["ops"]:
        for t in o["inputs"] + o["outputs"]:
            assert t["dtype"] in ("int8", "uint8") or (t["dtype"] == "int32" and t["role"] in ("bias", "param"))


def test_bundle_metadata_readable_by_runtime(tiny):
    meta = read_bundle_meta(tiny["out"].read_bytes(), "bundle")
    assert meta.labels == LABELS
    assert (meta.input_height, meta.input_width, meta.input_channels) == (48, 48, 1)
    q = meta.quantization
    assert q["input"]["dtype"] == "int8" and q["output"]["dtype"] == "int8"
    assert q["input"]["shape"] == [1, 48, 48, 1]
    assert abs(q["input"]["scale"] - 1 / 255) < 1e-6 and q["input"]["zero_point"] == -128
    assert meta.provenance["run"] == "tiny-test-run"  # the trainer's provenance is kept
    assert meta.provenance["source_run"].endswith("run") and "converted_at" in meta.provenance
    assert "tensorflow" in " ".join(meta.provenance["versions"])
    r = _load(tiny["report"])
    assert meta.metrics["quantized"]["agreement"] == r["agreement"]
    assert meta.metrics["quantized"]["int8"]["accuracy"] == pytest.approx(r["int8"]["accuracy"], abs=1e-6)


def test_runtime_interpreter_agrees_at_the_reported_rate(tiny):
    """The runtime's own interpreter loads the bundle; float-vs-int8 agreement equals the report's."""
    from edge_fer.interpreter import load_interpreter

    li = load_interpreter(model_content=tiny["out"].read_bytes(), device="cpu", threads=1)
    it = li.interpreter
    din, dout = it.get_input_details()[0], it.get_output_details()[0]
    assert din["dtype"] == np.int8 and list(din["shape"]) == [1, 48, 48, 1]
    with np.load(tiny["test_npz"]) as z:
        x, y = z["x"], z["y"]
    scale, zp = din["quantization"]
    xf = x[..., None].astype(np.float32) / 255.0
    pred_q = []
    for i in range(len(x)):
        it.set_tensor(din["index"], np.clip(np.round(xf[i : i + 1] / scale + zp), -128, 127).astype(np.int8))
        it.invoke()
        pred_q.append(int(it.get_tensor(dout["index"]).argmax()))
    model = keras.models.load_model(tiny["run"] / "model.keras", compile=False)
    pred_f = model.predict(xf, verbose=0).argmax(axis=1)
    r = _load(tiny["report"])
    assert np.mean(pred_f == np.asarray(pred_q)) == pytest.approx(r["agreement"], abs=1e-9)
    assert int(np.sum(pred_f == np.asarray(pred_q))) == r["agreement_count"]
    assert np.mean(np.asarray(pred_q) == y) == pytest.approx(r["int8"]["accuracy"], abs=1e-9)
    assert r["agreement"] >= 0.8


def test_float_and_decoder_outputs(tiny):
    from edge_fer.convert.audit import inspect_tflite

    r = _load(tiny["report"])
    fpath = Path(r["outputs"]["float"])
    assert fpath.name == "fer_int8_float.tflite" and fpath.is_file()
    fmeta = read_bundle_meta(fpath.read_bytes())
    assert fmeta.quantization["input"]["dtype"] == "float32"
    dpath = Path(r["outputs"]["decoder"])
    assert dpath.name == "fer_int8_decoder.tflite" and dpath.is_file()
    assert inspect_tflite(dpath.read_bytes())["all_int8"]
    assert r["decoder"]["input_shape"] == [1, 12, 12, 4]
    assert r["decoder"]["mse_int8"] < r["decoder"]["mse_float"] + 0.05
    # outputs get the usual permissions (not the temp file's 0600): a service user must read them
    import os

    umask = os.umask(0)
    os.umask(umask)
    for p in (fpath, dpath, Path(r["outputs"]["model"]), Path(r["outputs"]["report"])):
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p
    leftovers = [p.name for p in tiny["out_dir"].iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_edgetpu_audit_and_missing_compiler(tiny):
    e = _load(tiny["report"])["edgetpu"]
    assert e["compatible"] is True and e["problems"] == []
    assert e["ops_expected_on_tpu"] == e["ops_total"] > 0
    if e["compiler"]["available"] is False:
        assert "edgetpu_compiler" in e["compiler"]["message"] and "apt" in e["compiler"]["message"]


def test_edgetpu_compiler_is_run_when_on_path(tiny, tmp_path, monkeypatch):
    from edge_fer.convert.audit import run_edgetpu_compiler

    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "edgetpu_compiler"
    fake.write_text(
        "#!/bin/sh\n"
        'out=""; while [ $# -gt 1 ]; do case "$1" in -o) out="$2"; shift;; esac; shift; done\n'
        'm="$1"; b=$(basename "$m" .tflite); cp "$m" "$out/${b}_edgetpu.tflite"; '
        'echo "Edge TPU Compiler version 16.0" > "$out/${b}_edgetpu.log"; echo "Model compiled successfully."\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    model = tmp_path / "m.tflite"
    model.write_bytes(tiny["out"].read_bytes())
    res = run_edgetpu_compiler(model, tmp_path)
    assert res["ran"] and res["returncode"] == 0
    assert (tmp_path / "m_edgetpu.tflite").is_file()
    assert "Compiler version" in (tmp_path / "m_edgetpu.log").read_text()


def test_audit_flags_a_float_model(tiny):
    from edge_fer.convert.audit import inspect_tflite

    info = inspect_tflite((tiny["out_dir"] / "fer_int8_float.tflite").read_bytes())
    assert not info["all_int8"] and not info["edgetpu"]["compatible"]
    assert any("float32" in p for p in info["edgetpu"]["problems"])
    assert info["edgetpu"]["first_unmappable_op"].startswith("0:")


def test_float_op_left_by_the_converter_is_refused():
    """TFLITE_BUILTINS_INT8 still keeps an op without an int8 kernel (here SIN) in float between
    DEQUANTIZE/QUANTIZE; the audit refuses the model instead of shipping it."""
    from edge_fer.convert import quantize
    from edge_fer.convert.audit import require_full_integer

    from edge_fer.errors import ModelError

    inp = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(4, 3, strides=4)(inp)
    x = keras.layers.Lambda(lambda t: keras.ops.sin(t))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    m = keras.Model(inp, keras.layers.Dense(K, activation="softmax")(x))
    b = quantize.convert(m, np.random.default_rng(0).random((8, 48, 48, 1), dtype=np.float32))
    with pytest.raises(ModelError, match="not fully integer.*SIN"):
        require_full_integer(b)


# --- the gate and uint8 I/O ----------------------------------------------------------------------


def test_max_drop_gate_fails_with_exit_1(tiny, tmp_path):
    """A failed accuracy gate is a failed check: exit 1 (it was 3), through the installed command."""
    import subprocess
    import sys

    out, rep = tmp_path / "m.tflite", tmp_path / "r.json"
    p = subprocess.run(
        [
            str(Path(sys.executable).with_name("edge-fer")),
            "convert",
            str(tiny["run"] / "model.keras"),
            "-o",
            str(out),
            "--json",
            str(rep),
            "--calib-data",
            str(tiny["train_npz"]),
            "--eval-data",
            str(tiny["test_npz"]),
            "--calib-samples",
            "70",
            "--latency-runs",
            "5",
            "--max-drop",
            "-100",
            "--io",
            "uint8",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    code, err = p.returncode, p.stderr
    assert code == 1, err[-2000:]
    assert "exceeds --max-drop" in err and "Traceback" not in err
    r = _load(rep)
    assert r["schema"] == "edge-fer-convert-report/1" and r["version"] and r["created"].endswith("Z")
    assert r["gate"]["passed"] is False and r["gate"]["max_drop_points"] == -100
    # uint8 I/O: QUANTIZE at the edges only, still Edge-TPU compatible
    meta = read_bundle_meta(out.read_bytes())
    assert meta.quantization["input"]["dtype"] == "uint8" and meta.quantization["input"]["zero_point"] == 0
    assert r["all_int8"] and r["edgetpu"]["compatible"], r["edgetpu"]["problems"]
    assert r["eval"]["split"] == "all" and r["calibration"]["n"] == 70


# --- bad input: one line, exit 2, nothing written -------------------------------------------------


def _assert_refused(code: int, err: str, out: Path, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("edge-fer: error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    assert not out.exists()
    assert [p for p in out.parent.iterdir() if p.name.startswith(".")] == []


def test_refuses_nonexistent_path(tmp_path, capsys):
    out = tmp_path / "m.tflite"
    code, err = cli(["convert", str(tmp_path / "nope"), "--out", str(out)], capsys)
    _assert_refused(code, err, out, "does not exist")


def test_refuses_corrupt_model_file(tmp_path, capsys):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"this is not a keras model at all" * 10)
    out = tmp_path / "m.tflite"
    code, err = cli(["convert", str(bad), "--out", str(out)], capsys)
    _assert_refused(code, err, out, "not a Keras model")

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"PK\x03\x04" + os.urandom(200))
    code, err = cli(["convert", str(run), "--out", str(out)], capsys)
    _assert_refused(code, err, out)

    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    code, err = cli(["convert", str(txt), "--out", str(out)], capsys)
    _assert_refused(code, err, out, "not a model")


def test_refuses_a_tflite_model_as_input(tiny, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    src = str(tiny["out_dir"] / "fer_int8_float.tflite")
    code, err = cli(["convert", src, "--out", str(out), "--no-calibrate"], capsys)
    _assert_refused(code, err, out, "already a TFLite bundle", "recalibrate")
    code, err = cli(["convert", src, "--out", str(out)], capsys)  # recalibration needs the selection split
    _assert_refused(code, err, out, "--eval-data")


def test_refuses_wrong_input_shape(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    tiny_classifier((64, 64, 1)).save(run / "model.keras")
    ModelMeta().save(run / "metadata.json")
    out = tmp_path / "m.tflite"
    code, err = cli(["convert", str(run), "--out", str(out), "--calib-data", str(tiny["train_npz"])], capsys)
    _assert_refused(code, err, out, "wrong input shape")


def test_refuses_empty_and_unreadable_calibration(tiny, tmp_path, capsys):
    out = tmp_path / "out" / "m.tflite"
    out.parent.mkdir()
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 48, 48), np.uint8), y=np.zeros((0,), np.int64))
    code, err = cli(["convert", str(tiny["run"]), "--out", str(out), "--calib-data", str(empty)], capsys)
    _assert_refused(code, err, out, "empty")

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an npz")
    code, err = cli(["convert", str(tiny["run"]), "--out", str(out), "--calib-data", str(garbage)], capsys)
    _assert_refused(code, err, out, "cannot read")

    code, err = cli(
        ["convert", str(tiny["run"]), "--out", str(out), "--calib-data", str(tmp_path / "missing.csv")], capsys
    )
    _assert_refused(code, err, out, "does not exist")


def test_refuses_unwritable_output(tiny, tmp_path, capsys):
    out = tmp_path / "no" / "such" / "dir" / "m.tflite"
    code, err = cli(["convert", str(tiny["run"]), "--out", str(out)], capsys)
    assert code == 74 and "does not exist" in err and "Traceback" not in err  # an output error
    out = tmp_path / "adir"
    out.mkdir()
    code, err = cli(["convert", str(tiny["run"]), "--out", str(out)], capsys)
    assert code == 2 and "is a directory" in err


def test_refuses_to_write_over_the_runs_own_dataset(tiny, capsys):
    """The dataset config.json names is convert's default input: -o or --json there replaced it (exit 0)."""
    data = tiny["data"]
    before = data.read_bytes()
    code, err = cli(["convert", str(tiny["run"]), "-o", str(data)], capsys)
    assert code == 2 and "is also an input" in err and "Traceback" not in err
    code, err = cli(["convert", str(tiny["run"]), "-o", str(data.with_suffix(".tflite")), "--json", str(data)], capsys)
    assert code == 2 and "--json" in err and "is also an input" in err
    assert data.read_bytes() == before and not data.with_suffix(".tflite").exists()


def test_without_tensorflow_says_which_extra(tiny, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    out = tmp_path / "m.tflite"
    code, err = cli(["convert", str(tiny["run"]), "--out", str(out)], capsys)
    _assert_refused(code, err, out, "'train' extra")


# --- pure helpers ---------------------------------------------------------------------------------


def test_stratified_sample_is_balanced_seeded_and_takes_rare_classes():
    from edge_fer.convert.data import stratified_sample

    y = np.concatenate([np.full(500, 0), np.full(3, 1), np.full(200, 2)])
    idx = stratified_sample(y, 30, seed=5, num_classes=3)
    counts = np.bincount(y[idx], minlength=3)
    assert counts.tolist() == [14, 3, 13] or counts.tolist() == [13, 3, 14]
    assert len(set(idx.tolist())) == 30
    assert np.array_equal(idx, stratified_sample(y, 30, seed=5, num_classes=3))
    assert not np.array_equal(np.sort(idx), np.sort(stratified_sample(y, 30, seed=6, num_classes=3)))
    assert len(stratified_sample(y, 10_000, seed=0, num_classes=3)) == len(y)


def test_flip_average_is_stored_verified_and_applied_by_the_runtime(tiny, tmp_path, capsys):
    """--flip-average: the bundle says so, the float reference and the runtime both average each face
    with its mirror image, and the runtime's probabilities are exactly that average."""
    from edge_fer.classify import Classifier

    out, rep = tmp_path / "flip.tflite", tmp_path / "r.json"
    code, err = cli(
        [
            "convert",
            str(tiny["run"]),
            "--out",
            str(out),
            "--report",
            str(rep),
            "--flip-average",
            "--calib-samples",
            "70",
            "--latency-runs",
            "5",
            "--max-drop",
            "100",
        ],
        capsys,
    )
    assert code == 0, err
    r = _load(rep)
    assert r["latency_ms"]["inferences_per_face"] == 2
    assert read_bundle_meta(out.read_bytes()).preprocessing.flip_average is True
    flip = Classifier.from_file(out, device="cpu", threads=1)
    plain = Classifier.from_file(tiny["out"], device="cpu", threads=1)
    assert plain.preprocessing.flip_average is False
    crops = np.random.default_rng(0).integers(0, 255, (5, 48, 48), dtype=np.uint8)
    x = flip.prepare_crops(list(crops))
    # the same weights (same run, calibration seed and sample size differ only in the metadata flag)
    same = Classifier(embed_flag(out.read_bytes(), False), device="cpu", threads=1)
    want = (same.predict_raw(x) + same.predict_raw(x[:, :, ::-1])) / 2
    np.testing.assert_allclose(flip.predict_raw(x), want, atol=1e-6)
    # mirror-invariant by construction
    np.testing.assert_allclose(flip.predict_raw(x), flip.predict_raw(x[:, :, ::-1]), atol=1e-6)


def embed_flag(bundle: bytes, flag: bool) -> bytes:
    from dataclasses import replace

    from edge_fer.convert.metadata import embed_metadata

    meta = read_bundle_meta(bundle)
    return embed_metadata(bundle, replace(meta, preprocessing=replace(meta.preprocessing, flip_average=flag)))


def test_margin_is_set_at_conversion_and_used_by_the_runtime(tiny, tmp_path, capsys):
    """--margin: the crop margin chosen on the selection split (benchmarks/crop_margin.py) is stored in
    the bundle, reported, and the runtime's crops follow it; the weights are the run's."""
    from edge_fer.classify import Classifier

    out, rep = tmp_path / "m.tflite", tmp_path / "r.json"
    args = ["convert", str(tiny["run"]), "--out", str(out), "--report", str(rep), "--margin", "0.05"]
    code, err = cli([*args, "--calib-samples", "70", "--latency-runs", "5", "--max-drop", "100"], capsys)
    assert code == 0, err
    assert read_bundle_meta(out.read_bytes()).preprocessing.margin == 0.05
    assert _load(rep)["params"]["margin"] == 0.05
    assert read_bundle_meta(tiny["out"].read_bytes()).preprocessing.margin == 0.1  # the run's --margin
    gray = np.random.default_rng(1).integers(0, 255, (200, 200), dtype=np.uint8)
    box = [(50, 50, 100, 100)]
    got = Classifier.from_file(out).prepare(gray, box)
    from edge_fer.preprocess import face_crops, to_model_input

    clf = Classifier.from_file(out)
    want = to_model_input(face_crops(gray, box, clf.preprocessing, 48, 48), clf.preprocessing, clf.input_spec)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, Classifier.from_file(tiny["out"]).prepare(gray, box))  # 0.1: another crop
    code, err = cli([*args[:-1], "2.5"], capsys)
    assert code == 2 and "--margin" in err


def test_eval_split_val_verifies_on_the_selection_split_only(tiny, tmp_path, capsys):
    """--eval-split val: candidates are compared on the selection split (FER2013 PublicTest), so a
    conversion made to choose between models never shows the test split; the default stays the test split."""
    out, rep = tmp_path / "m.tflite", tmp_path / "r.json"
    args = ["convert", str(tiny["run"]), "--out", str(out), "--report", str(rep), "--eval-split", "val"]
    code, err = cli([*args, "--calib-samples", "70", "--latency-runs", "5", "--max-drop", "100"], capsys)
    assert code == 0, err
    r = _load(rep)
    assert r["eval"]["split"] == "PublicTest" and r["eval"]["n"] == 6 * K
    assert r["params"]["eval_split"] == "val" and r["int8"]["n"] == 6 * K
    assert read_bundle_meta(out.read_bytes()).metrics["quantized"]["eval"]["split"] == "PublicTest"
    assert _load(tiny["report"])["eval"]["split"] == "PrivateTest"  # the default: the test split
    code, err = cli([*args[:-1], "PrivateTest"], capsys)
    assert code == 2 and "--eval-split" in err and "Traceback" not in err


# --- outputs that are not plain files, a set renamed whole, sources that would block ---------------

QUICK = ("--calib-samples", "70", "--latency-runs", "3", "--max-drop", "100", "--no-edgetpu-compile", "-q")


def _hidden(*folders: Path) -> list[str]:
    return [p.name for folder in folders for p in folder.iterdir() if p.name.startswith(".")]


def test_an_output_that_is_a_device_or_a_fifo_is_refused_before_any_work(tiny, tmp_path):
    """-o on a device or a FIFO (or a link to one) was replaced by a regular file, exit 0: a bundle is
    files side by side, so it is one line naming it, exit 2, and the node is left as it was."""
    from tests.cli import assert_one_line_error, run_cli

    dev = tmp_path / "fulldev"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # a private /dev/full
    except PermissionError:
        dev = None
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.tflite"
    link.symlink_to(fifo)
    cases = [(fifo, "FIFO"), (link, "FIFO")] + ([(dev, "character device")] if dev is not None else [])
    for target, kind in cases:
        p = run_cli("convert", tiny["run"], "-o", target, *QUICK, timeout=60)
        assert_one_line_error(p, str(target), kind, "not a regular file")
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink()
    if dev is not None:
        assert stat.S_ISCHR(dev.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["fifo", "link.tflite"] + (["fulldev"] if dev else []))


def test_an_output_link_to_a_bundle_keeps_its_link(tiny, tmp_path):
    """-o a link to an existing bundle replaced the link with a file: the file it points at is replaced,
    the companions are named after -o as given, and no backup or temporary file is left."""
    from tests.cli import run_cli

    real_dir, out_dir = tmp_path / "real", tmp_path / "out"
    real_dir.mkdir()
    out_dir.mkdir()
    real = real_dir / "m.tflite"
    real.write_bytes(b"the old bundle")
    link = out_dir / "mine.tflite"
    link.symlink_to(real)
    p = run_cli("convert", tiny["run"], "-o", link, *QUICK, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert read_bundle_meta(real.read_bytes()).labels == LABELS
    assert (out_dir / "mine_report.json").is_file() and (out_dir / "mine_reliability.png").is_file()
    assert sorted(p.name for p in real_dir.iterdir()) == ["m.tflite"]
    assert _hidden(real_dir, out_dir) == []


def test_an_output_set_that_cannot_be_renamed_whole_keeps_the_old_set(tiny, tmp_path):
    """One companion that cannot be replaced (immutable) left the new model beside the old report and
    diagram, exit 74: now the old set stays whole, and nothing hidden is left behind."""
    import shutil
    import subprocess

    from tests.cli import run_cli
    from tests.test_reliability_io import assert_one_clean_error

    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    out = tmp_path / "m.tflite"
    old = {out: b"old model", tmp_path / "m_report.json": b"{}\n", tmp_path / "m_reliability.png": b"old png"}
    for path, data in old.items():
        path.write_bytes(data)
    png = tmp_path / "m_reliability.png"
    if subprocess.run(["chattr", "+i", str(png)], capture_output=True).returncode != 0:
        pytest.skip("this file system or user cannot make a file immutable")
    try:
        p = run_cli("convert", tiny["run"], "-o", out, *QUICK, timeout=300)
    finally:
        subprocess.run(["chattr", "-i", str(png)], capture_output=True)
    assert_one_clean_error(p, 74, str(png))
    assert {path: path.read_bytes() for path in old} == old
    assert _hidden(tmp_path) == []


def test_a_source_that_is_a_fifo_is_refused_not_waited_on(tiny, tmp_path):
    """A FIFO as the model hung for ever; a FIFO metadata.json was taken as missing (exit 0) and a FIFO
    config.json as naming no dataset: each is one line naming the file, exit 2."""
    import shutil

    from tests.cli import assert_one_line_error, run_cli

    out = tmp_path / "out" / "m.tflite"
    out.parent.mkdir()
    fifo_model = tmp_path / "fifo.keras"
    os.mkfifo(fifo_model)
    p = run_cli("convert", fifo_model, "-o", out, *QUICK, timeout=60)
    assert_one_line_error(p, str(fifo_model), "FIFO")
    for name in ("model.keras", "metadata.json", "config.json"):
        run = tmp_path / name.replace(".", "_")
        shutil.copytree(tiny["run"], run)
        (run / name).unlink()
        os.mkfifo(run / name)
        p = run_cli("convert", run, "-o", out, *QUICK, timeout=60)
        assert_one_line_error(p, str(run / name), "FIFO")
    assert list(out.parent.iterdir()) == []


def test_eval_data_takes_a_held_out_folder_as_eval_does(tiny, tmp_path):
    """--eval-data <class>/PrivateTest_*.jpg (what `edge-fer eval --data` reads) was refused for having
    no training images; an --eval-data that cannot be used names the flag."""
    import cv2

    from tests.cli import assert_one_line_error, run_cli

    held = tmp_path / "held"
    with np.load(tiny["test_npz"]) as z:
        for i, (x, y) in enumerate(zip(z["x"], z["y"])):
            (held / LABELS[y]).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(held / LABELS[y] / f"PrivateTest_{i:04d}.png"), x)
    out, rep = tmp_path / "m.tflite", tmp_path / "r.json"
    p = run_cli("convert", tiny["run"], "-o", out, "--json", rep, "--eval-data", held, *QUICK, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    r = _load(rep)
    assert r["eval"]["split"] == "PrivateTest" and r["eval"]["n"] == 12 * K and r["eval"]["source"] == str(held)
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_cli("convert", tiny["run"], "-o", tmp_path / "e.tflite", "--eval-data", empty, *QUICK, timeout=300)
    assert_one_line_error(p, "--eval-data", str(empty))
