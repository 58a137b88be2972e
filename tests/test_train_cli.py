"""`edge-fer train` end to end on tiny generated data, resume, bad input, missing extra."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_fer.bundle import ModelMeta
from edge_fer.cli import main
from tests.cli import env_without_tensorflow, fill, imported_blocked, mounted_tmpfs, run_cli
from tests.datasets import write_csv

pytestmark = pytest.mark.train

TINY = [
    "--ae-epochs",
    "1",
    "--epochs",
    "1",
    "--head-epochs",
    "1",
    "--width",
    "4",
    "--latent-channels",
    "8",
    "--batch-size",
    "16",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = write_csv(root / "fer2013.csv")
    out = root / "run"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 0
    return data, out


def test_run_directory_has_everything(tiny_run):
    _, out = tiny_run
    for name in sorted(RUN_FILES | {"curves.png", "confusion_matrix.png", "reconstructions.png", "saved_model"}):
        assert (out / name).exists(), name
    m = json.loads((out / "metrics.json").read_text())
    for split in ("PublicTest", "PrivateTest"):
        assert m[split]["n"] == 14
        assert 0 <= m[split]["accuracy"] <= 1 and 0 <= m[split]["macro_f1"] <= 1
        assert len(m[split]["confusion_matrix"]) == 7 and set(m[split]["per_class"]) >= {"happy", "disgust"}
    assert m["selection"]["split"] == "PublicTest"
    assert m["sharpness"]["degraded"] is False and m["sharpness"]["blur_sigma"] == 0.0
    meta = ModelMeta.load(out / "metadata.json")
    assert meta.labels[3] == "happy" and meta.input_height == 48
    assert meta.metrics["PrivateTest"]["n"] == 14
    history = json.loads((out / "history.json").read_text())
    assert [r["stage"] for r in history] == ["ae", "head", "finetune"]
    assert "val_accuracy" in history[-1]


def test_saved_autoencoder_is_the_stage1_one(tiny_run):
    """Fine-tuning changes the encoder the classifier shares; the saved autoencoder must still be
    the stage-1 pair (the reconstruction-error signal), not the fine-tuned encoder + old decoder."""
    import numpy as np
    from edge_fer.train.model import NetConfig, build_autoencoder, build_decoder, build_encoder
    from tensorflow import keras

    _, out = tiny_run
    saved = keras.models.load_model(out / "autoencoder.keras")
    cfg = NetConfig(width=4, latent_channels=8)
    ref = build_autoencoder(build_encoder(cfg), build_decoder(cfg))
    ref.load_weights(out / "checkpoints" / "ae.weights.h5")
    x = np.random.default_rng(0).random((4, 48, 48, 1), dtype=np.float32)
    np.testing.assert_allclose(saved.predict(x, verbose=0), ref.predict(x, verbose=0), atol=1e-6)


def test_existing_run_needs_resume_or_overwrite(tiny_run, capsys):
    data, out = tiny_run
    assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name,text,needle",
    [
        ("config.json", '{"width": 4, ', "cannot read"),
        ("config.json", "[1, 2]", "not a JSON object"),
        ("state.json", "garbage", "is damaged"),
    ],
)
def test_resume_of_a_run_with_a_damaged_file_is_one_line(tiny_run, tmp_path, capsys, name, text, needle):
    """A damaged config.json or state.json was an internal error (exit 70) on --resume."""
    import shutil

    data, done_run = tiny_run
    out = tmp_path / "run"
    shutil.copytree(done_run, out)
    (out / name).write_text(text)
    assert main(["train", "--data", str(data), "--out", str(out), "--resume", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edge-fer: error:") and needle in err[-1] and name in err[-1], err


def test_resume_skips_finished_stages(tiny_run, tmp_path, caplog):
    import shutil

    data, done_run = tiny_run
    out = tmp_path / "run"
    shutil.copytree(done_run, out)
    state = json.loads((out / "state.json").read_text())
    state["done"] = ["ae"]  # as if killed after stage 1
    (out / "state.json").write_text(json.dumps(state))
    (out / "metrics.json").unlink()
    caplog.set_level("INFO")
    assert main(["train", "--data", str(data), "--out", str(out), "--resume", *TINY]) == 0
    assert "stage ae: done earlier" in caplog.text and "stage head: encoder frozen" in caplog.text
    assert json.loads((out / "state.json").read_text())["done"] == ["ae", "head", "finetune"]
    assert (out / "metrics.json").exists()


def test_no_pretrain_ablation(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "-o", str(out), "--no-pretrain", "-q", *TINY]) == 0
    assert capsys.readouterr().out == ""  # -q: no accuracy table
    assert not (out / "decoder.keras").exists()
    m = json.loads((out / "metrics.json").read_text())
    assert m["pretrain"] is False and "ae" not in m["timing"]


def test_bad_blur_sigma_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--blur-sigma", "lots"]) == 2
    assert "--blur-sigma must be 'auto' or a number" in capsys.readouterr().err


def test_malformed_dataset_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,image\n1,2\n")
    r = run_cli("train", "--data", bad, "--out", tmp_path / "o")
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert err[-1].startswith("edge-fer: error:") and "expected columns emotion,pixels,Usage" in err[-1]
    assert "Traceback" not in r.stderr


def test_train_without_tensorflow_names_the_extra(tmp_path):
    """No Keras backend at all (JAX and PyTorch would otherwise train): the one line names the 'train' extra."""
    code = (
        "import sys; sys.modules.update(tensorflow=None, jax=None, torch=None); from edge_fer.cli import main; "
        f"sys.exit(main(['train', '--data', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "pip install 'edge-fer[train]'" in r.stderr and "Traceback" not in r.stderr


# --- the run directory whatever the backend: train -> `edge-fer convert` -> the runtime ------------------

RUN_FILES = {
    "model.keras",
    "encoder.keras",
    "decoder.keras",
    "autoencoder.keras",
    "metadata.json",
    "metrics.json",
    "history.json",
    "history.csv",
    "config.json",
    "MODEL_CARD.md",
}


# a 'tensorflow' package that records being imported and then fails, as if TensorFlow were not there
def _convert_and_classify(run: Path, tmp_path: Path) -> None:
    """The installed `edge-fer convert` makes the verified int8 bundle, and the runtime classifies with it."""
    from edge_fer.classify import Classifier
    from tests.datasets import faces

    out = tmp_path / "fer_int8.tflite"
    args = ["convert", str(run), "--out", str(out), "--calib-samples", "28", "--latency-runs", "3", "--max-drop", "100"]
    r = run_cli(*args, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "fer_int8_report.json").read_text())
    assert report["eval"]["split"] == "PrivateTest" and report["gate"]["passed"] is True  # verified on int8
    assert 0.0 <= report["int8"]["accuracy"] <= 1.0 and report["agreement"] is not None
    clf = Classifier.from_file(out, device="cpu", threads=1)
    preds = clf.predict(clf.prepare_crops(list(faces(3)[0])))
    assert len(preds) == 3 and preds[0].label in clf.labels
    assert all(abs(float(p.scores.sum()) - 1.0) < 0.05 for p in preds)


def test_tensorflow_run_converts_and_classifies(tiny_run, tmp_path):
    _, out = tiny_run
    prov = ModelMeta.load(out / "metadata.json").provenance
    assert prov["backend"] == "tensorflow" and prov["tensorflow"] == prov["backend_version"] and prov["devices"]
    assert "on tensorflow" in (out / "MODEL_CARD.md").read_text()
    _convert_and_classify(out, tmp_path)


@pytest.mark.parametrize("backend", ["jax", pytest.param("torch", marks=pytest.mark.slow)])
def test_run_trained_on_another_backend_converts_and_classifies(tmp_path, backend):
    """`edge-fer train --backend jax|torch` (TensorFlow installed but never imported) writes the same run
    directory; `edge-fer convert` (TensorFlow) turns it into the verified int8 bundle the runtime loads."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install 'edge-fer[{backend}]')")
    block = tmp_path / "block"
    data, run = write_csv(tmp_path / "fer2013.csv"), tmp_path / "run"
    env = env_without_tensorflow(block, names=("tensorflow",))  # Keras runs on jax or torch
    env.pop("KERAS_BACKEND", None)
    args = ["train", "--backend", backend, "--data", str(data), "--out", str(run), *TINY, "--limit", "14"]
    r = run_cli(*args, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "tensorflow" not in imported_blocked(block), f"edge-fer train --backend {backend} imported tensorflow"
    assert RUN_FILES <= {p.name for p in run.iterdir()}
    meta = ModelMeta.load(run / "metadata.json")
    prov = meta.provenance
    assert prov["backend"] == backend and prov["backend_version"] and prov["devices"] and "tensorflow" not in prov
    assert meta.metrics["PrivateTest"]["n"] == 14
    assert json.loads((run / "config.json").read_text())["backend"] == backend
    assert f"on {backend} " in (run / "MODEL_CARD.md").read_text()
    _convert_and_classify(run, tmp_path)


def test_init_model_continues_a_finished_classifier(tiny_run, tmp_path, caplog):
    data, done_run = tiny_run
    out = tmp_path / "more"
    caplog.set_level("INFO")
    assert main(["train", "--data", str(data), "--out", str(out), "--init-model", str(done_run), *TINY]) == 0
    assert f"stage head: the classifier taken from {done_run / 'model.keras'}" in caplog.text
    assert "stage ae: taken from" in caplog.text
    timing = json.loads((out / "state.json").read_text())["timing"]
    assert timing["head"]["epochs"] == 0 and timing["ae"]["epochs"] == 0
    assert (out / "model.keras").is_file() and (out / "decoder.keras").is_file()


def test_init_model_that_is_not_a_run_is_one_line(tiny_run, tmp_path):
    data, _ = tiny_run
    r = run_cli("train", "--data", str(data), "--out", str(tmp_path / "o"), "--init-model", str(tmp_path), *TINY)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"edge-fer: error: --init-model {tmp_path}: not a finished run directory (no model.keras)"
    )


def test_init_model_of_another_width_is_one_line_naming_what_differs(tiny_run, tmp_path):
    """Weights of another shape were ~40 lines of Keras warnings and an error naming --init-ae (a flag
    the user did not give) with Keras's message cut mid-word."""
    data, done_run = tiny_run
    wider = [*TINY[:-5], "8", *TINY[-4:]]  # --width 8
    assert wider[wider.index("--width") + 1] == "8"
    r = run_cli("train", "--data", data, "--out", tmp_path / "o", "--init-model", done_run, *wider)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "UserWarning" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (
        f"edge-fer: error: --init-model {done_run}: ae.weights.h5 does not fit this model (--width 4 there, 8 here)"
    )
    r = run_cli(
        "train",
        "--data",
        data,
        "--out",
        tmp_path / "o2",
        "--init-ae",
        done_run / "checkpoints" / "ae.weights.h5",
        *wider,
    )
    assert r.returncode == 2 and "UserWarning" not in r.stderr, r.stderr[-2000:]
    assert "--init-ae" in r.stderr.strip().splitlines()[-1] and "--width" in r.stderr.strip().splitlines()[-1]


def test_an_unlabeled_folder_without_images_is_refused_before_the_run_folder_is_made(tmp_path):
    """It was refused after the run folder was written, so the corrected rerun found 'a run' there."""
    data = write_csv(tmp_path / "fer2013.csv")
    (tmp_path / "unl").mkdir()
    (tmp_path / "unl" / "readme.txt").write_text("no faces here")
    r = run_cli("train", "--data", data, "--out", tmp_path / "run", "--unlabeled", tmp_path / "unl", *TINY)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == f"edge-fer: error: --unlabeled {tmp_path / 'unl'}: no readable images"
    assert not (tmp_path / "run").exists()


def test_a_full_disk_stops_training_in_one_line_and_resume_finishes(tmp_path):
    """A disk that fills up during training was h5py's tracebacks, an internal error (exit 70) or a
    segmentation fault (exit 139), with a half-written checkpoint left behind. Now: one line, exit
    74, before the write; every finished stage kept; ``--resume`` finishes once space is freed."""
    data = write_csv(tmp_path / "fer2013.csv")
    args = ["--ae-epochs", "2", "--epochs", "2", *TINY[4:]]
    with mounted_tmpfs(tmp_path / "disk", "8m") as disk:
        filler = fill(disk, 1900 << 10)  # room for stage 1, not for the whole run
        out = disk / "run"
        r = run_cli("train", "--data", data, "--out", out, *args, timeout=600)
        assert r.returncode == 74, r.stderr[-2000:]
        assert "Traceback" not in r.stderr and "Logging error" not in r.stderr, r.stderr[-2000:]
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("edge-fer: error:")]
        assert len(errors) == 1 and "no space left on device" in errors[0] and "--resume" in errors[0], errors
        done = json.loads((out / "state.json").read_text())["done"]
        assert "ae" in done, done  # work finished before the disk filled is kept
        assert not list(out.rglob(".partial-*")), list(out.rglob(".partial-*"))
        kept = (out / "checkpoints" / "ae.weights.h5").read_bytes()

        filler.unlink()
        r = run_cli("train", "--data", data, "--out", out, "--resume", *args, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        assert (out / "checkpoints" / "ae.weights.h5").read_bytes() == kept  # not redone
        history = json.loads((out / "history.json").read_text())
        assert [(h["stage"], h["epoch"]) for h in history] == [
            ("ae", 1),
            ("ae", 2),
            ("head", 1),
            ("finetune", 1),
            ("finetune", 2),
        ]
        assert (out / "model.keras").is_file() and json.loads((out / "metrics.json").read_text())["PrivateTest"]["n"]
