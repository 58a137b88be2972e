"""`edge-fer train` end to end on tiny generated data, resume, bad input, missing extra."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge_fer.bundle import ModelMeta
from edge_fer.cli import main
from tests.datasets import write_csv

pytest.importorskip("tensorflow")

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
    for name in (
        "model.keras",
        "encoder.keras",
        "decoder.keras",
        "autoencoder.keras",
        "metadata.json",
        "metrics.json",
        "history.json",
        "history.csv",
        "config.json",
        "curves.png",
        "confusion_matrix.png",
        "reconstructions.png",
        "MODEL_CARD.md",
        "saved_model",
    ):
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


def test_no_pretrain_ablation(tmp_path):
    data = write_csv(tmp_path / "d.csv")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--no-pretrain", *TINY]) == 0
    assert not (out / "decoder.keras").exists()
    m = json.loads((out / "metrics.json").read_text())
    assert m["pretrain"] is False and "ae" not in m["timing"]


def test_bad_blur_sigma_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--blur-sigma", "lots"]) == 2
    assert "--blur-sigma must be 'auto' or a number" in capsys.readouterr().err


def test_malformed_dataset_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,image\n1,2\n")
    r = subprocess.run(
        [sys.executable, "-m", "edge_fer.cli", "train", "--data", str(bad), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert err[-1].startswith("edge-fer: error:") and "expected columns emotion,pixels,Usage" in err[-1]
    assert "Traceback" not in r.stderr


def test_train_without_tensorflow_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['tensorflow'] = None; from edge_fer.cli import main; "
        f"sys.exit(main(['train', '--data', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "pip install 'edge-fer[train]'" in r.stderr and "Traceback" not in r.stderr
