"""A tiny trained run with a stage-1 autoencoder, for the convert --write-quality-gate and adapt tests (TensorFlow;
the tests that use it are marked ``train``). Its converted bundle is committed: ``tests/data/tiny_ae*.tflite``.

The faces are the hand-labelled real face crops of ``benchmarks/data/crops`` (and their mirror
images); four of them (the photos) are held out for the tests. The run directory has what
``edge-fer train`` writes and ``convert`` / ``adapt`` read: ``model.keras``, ``autoencoder.keras``,
``encoder.keras``, ``decoder.keras``, ``metadata.json``, ``config.json`` (dataset: ``faces.npz``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CROPS = REPO / "benchmarks" / "data" / "crops"
HELD_OUT = ("c0099.png", "c0104.png", "c0108.png", "c0109.png")


def face_crops() -> tuple[np.ndarray, np.ndarray]:
    """(training faces, held-out faces) as uint8 (N, 48, 48)."""
    import cv2

    rows = [r for r in csv.DictReader(open(CROPS / "labels.csv")) if r["label"] == "face"]
    train = [cv2.imread(str(CROPS / r["file"]), cv2.IMREAD_GRAYSCALE) for r in rows if r["file"] not in HELD_OUT]
    held = [cv2.imread(str(CROPS / f), cv2.IMREAD_GRAYSCALE) for f in HELD_OUT]
    train = np.stack(train)
    return np.concatenate([train, train[:, :, ::-1]]), np.stack(held)


def build_tiny_run(root: Path, ae_epochs: int = 60) -> Path:
    import keras
    from edge_fer.train.model import NetConfig, build_autoencoder, build_classifier, build_decoder, build_encoder

    from edge_fer.bundle import ModelMeta

    keras.utils.set_random_seed(0)
    x, _ = face_crops()
    y = np.arange(len(x)) % 7
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "faces.npz", x=x, y=y)
    m = NetConfig(width=4, latent_channels=4, arch="res", weight_decay=0.0)
    enc, dec = build_encoder(m), build_decoder(m)
    ae = build_autoencoder(enc, dec)
    ae.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    xf = (x.astype(np.float32) / 255.0)[..., None]
    ae.fit(xf, xf, batch_size=16, epochs=ae_epochs, verbose=0)
    clf = build_classifier(build_encoder(m), m)
    clf.save(root / "model.keras")
    ae.save(root / "autoencoder.keras")
    enc.save(root / "encoder.keras")
    dec.save(root / "decoder.keras")
    ModelMeta().save(root / "metadata.json")
    (root / "config.json").write_text(json.dumps({"data": "faces.npz", "seed": 0, "val_fraction": 0.1}))
    return root


@pytest.fixture(scope="session")
def tiny_ae_run(tmp_path_factory) -> Path:
    return build_tiny_run(tmp_path_factory.mktemp("ae-run") / "run")
