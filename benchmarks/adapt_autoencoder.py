"""Should ``edge-fer adapt`` touch the autoencoder? Its face / not-face power under four treatments.

The gate's job is to reconstruct faces well and everything else badly. For each treatment of the run's
stage-1 autoencoder, adapted with the camera's unlabeled crops (``--crops``, e.g. what
``edge-fer run --save-crops`` collected on the shared video) mixed with as many original training faces:

* ``unchanged``: the stage-1 autoencoder as trained;
* ``BN re-estimated``: its batch-norm statistics recomputed on the mix (as adapt does for the classifier);
* ``+2 epochs, BN in batch-statistics mode``: reconstruction training continued (Adam 1e-4, batch 128);
* ``+2 epochs, BN frozen``: the same with batch norm in inference mode (``edge-fer adapt --ae-epochs 2``).

Reported on the hand-labelled crops of ``benchmarks/data/crops`` (float Keras, like the int8 gate up to
quantization): AUROC face vs not-face of the reconstruction error, and at the threshold convert would
store for the adapted run (99th percentile of the camera crops' errors) the faces kept and non-faces
rejected; and the reconstruction MSE of the camera crops.

    python benchmarks/adapt_autoencoder.py --run runs/res16 --crops video_crops \
        --out benchmarks/results/adapt_autoencoder
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_gate import CROPS, auroc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--crops", required=True, type=Path, help="the camera's unlabeled crops")
    ap.add_argument("--data", default=None, help="original faces (default: the run's dataset)")
    ap.add_argument("--out", default="benchmarks/results/adapt_autoencoder", type=Path)
    a = ap.parse_args()
    import keras

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from edge_fer.convert.quantize import load_keras_model
    from edge_fer.train.adapt import AdaptOptions, _all_layers, _original_faces, load_crops, reestimate_bn

    cfg = json.loads((a.run / "config.json").read_text())
    new_u8 = load_crops(a.crops, 48)
    orig_u8, _ = _original_faces(
        AdaptOptions(run_dir=a.run, unlabeled=a.crops, out=a.out, data=a.data), cfg, len(new_u8), 48
    )
    new = new_u8.astype(np.float32)[..., None] / 255
    mix = np.concatenate([new, orig_u8.astype(np.float32)[..., None] / 255])
    rows = [r for r in csv.DictReader(open(CROPS / "labels.csv")) if r["label"] in ("face", "not_face")]
    lx = (
        np.stack([cv2.imread(str(CROPS / r["file"]), cv2.IMREAD_GRAYSCALE) for r in rows]).astype(np.float32)[..., None]
        / 255
    )
    face = np.array([r["label"] == "face" for r in rows])

    def err(ae, x):
        return np.mean((np.asarray(ae.predict(x, batch_size=256, verbose=0)) - x) ** 2, axis=(1, 2, 3))

    def fresh():
        keras.utils.set_random_seed(0)
        return load_keras_model(a.run / "autoencoder.keras")

    def fit(ae, freeze: bool):
        if freeze:
            for ly in _all_layers(ae):
                if isinstance(ly, keras.layers.BatchNormalization):
                    ly.trainable = False
        ae.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
        ae.fit(mix, mix, batch_size=128, epochs=2, shuffle=True, verbose=0)
        return ae

    treatments = {
        "unchanged": lambda ae: ae,
        "BN re-estimated": lambda ae: (reestimate_bn(ae, mix), ae)[1],
        "+2 epochs, BN in batch-statistics mode": lambda ae: fit(ae, False),
        "+2 epochs, BN frozen (--ae-epochs 2)": lambda ae: fit(ae, True),
    }
    rep = {
        "run": str(a.run),
        "crops": str(a.crops),
        "n_crops": int(len(new)),
        "n_faces": int(face.sum()),
        "n_not_faces": int((~face).sum()),
        "rows": {},
    }
    for name, treat in treatments.items():
        ae = treat(fresh())
        e, cam = err(ae, lx), err(ae, new)
        t = float(np.percentile(cam, 99))
        rep["rows"][name] = {
            "auroc": round(auroc(-e[face], -e[~face]), 3),
            "threshold": round(t, 5),
            "faces_kept": int((e[face] <= t).sum()),
            "not_faces_rejected": int((e[~face] > t).sum()),
            "camera_mse": round(float(cam.mean()), 5),
        }
        print(name, rep["rows"][name], flush=True)
    L = [
        f"{rep['n_crops']} camera crops + as many original faces; scored on {rep['n_faces']} faces and {rep['n_not_faces']} not-faces.",
        "",
        "| autoencoder | AUROC face vs not-face | faces kept | not-faces rejected | camera crops' MSE |",
        "|---|---|---|---|---|",
    ]
    for name, r in rep["rows"].items():
        L.append(
            f"| {name} | {r['auroc']:.3f} | {r['faces_kept']}/{rep['n_faces']} | {r['not_faces_rejected']}/{rep['n_not_faces']} | {r['camera_mse']:.4f} |"
        )
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "adapt_autoencoder.json").write_text(json.dumps(rep, indent=2) + "\n")
    (a.out / "adapt_autoencoder.md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
