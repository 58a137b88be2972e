"""Camera adaptation on a shifted FER2013 (``edge-fer adapt``), measured.

The "new camera" is ``corruptions.camera_shift`` (fixed: half-resolution, gamma 1.6, noise sigma 8,
JPEG 25) applied to FER2013. Protocol: adapt with the *unlabeled* shifted PublicTest (3,589 crops,
written as PNG files, exactly what ``--save-crops`` would give); report accuracy on the shifted
PrivateTest before and after, and on the clean PrivateTest (the adaptation must not cost more than
1 point there). Variants: batch-norm statistics from the new crops alone (``--mix 0``), or mixed with
1x / 3x as many original training faces
(--mix 1, the default); the gate's threshold then comes from the new crops (share of faces flagged).

Float accuracies are the Keras model; the int8 rows go through ``edge-fer convert --write-quality-gate`` and the
runtime's ``Classifier`` / ``QualityGate``; "int8, calibrated on new crops" uses ``--calib-data
OUT/calibration.npz`` (the new crops with the adapted model's own labels).

    python benchmarks/adapt_shift.py --run runs/res16 --data ../shared/data/fer2013.zip \
        --out benchmarks/results/adapt_shift --work /tmp/adapt_shift

writes ``adapt_shift.json`` and ``adapt_shift.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from corruptions import camera_shift  # noqa: E402

VARIANTS = {  # name -> adapt options
    "BN, new crops only (--mix 0)": {"mix": 0.0, "ae_epochs": 0},
    "BN, new + 1x original (--mix 1)": {"mix": 1.0, "ae_epochs": 0},
    "BN, new + 2x original (--mix 2)": {"mix": 2.0, "ae_epochs": 0},
    "BN, new + 3x original (--mix 3)": {"mix": 3.0, "ae_epochs": 0},
}
MAX_CLEAN_DROP = 1.0  # points, on clean PublicTest: the selection rule for the default --mix


def float_acc(model_path: Path, x: np.ndarray, y: np.ndarray, prep) -> float:
    from edge_fer.convert.data import float_model_input
    from edge_fer.convert.quantize import load_keras_model

    m = load_keras_model(model_path)
    p = np.asarray(m.predict(float_model_input(x, prep, 1), batch_size=512, verbose=0))
    return round(100 * float(np.mean(p.argmax(1) == y)), 2)


def int8_eval(bundle: Path, sets: dict) -> dict:
    from edge_fer.classify import Classifier
    from edge_fer.quality import QualityGate, quality_path

    clf = Classifier.from_file(bundle)
    gate = QualityGate.from_file(quality_path(bundle))
    out = {"threshold": gate.threshold, "threshold_from": gate.calibration.get("split")}
    for name, (x, y) in sets.items():
        b = clf.prepare_crops(list(x))
        acc = float(np.mean(clf.predict_raw(b).argmax(1) == y))
        err = gate.errors(b, clf.input_spec)
        out[name] = {
            "accuracy": round(100 * acc, 2),
            "flagged_low_quality": round(100 * float(np.mean(err > gate.threshold)), 2),
            "mean_error": round(float(err.mean()), 6),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--data", default="../shared/data/fer2013.zip")
    ap.add_argument("--out", default="benchmarks/results/adapt_shift", type=Path)
    ap.add_argument("--work", default="/tmp/adapt_shift", type=Path)
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/adapt_shift.partial.json")
    ap.add_argument("--sizes", default="25,50,100,200,400,1000", type=lambda v: [int(t) for t in v.split(",") if t])
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from edge_fer.convert.converter import ConvertOptions, convert_run
    from edge_fer.train.adapt import AdaptOptions, adapt
    from edge_fer.train.data import load_labeled_images

    from edge_fer.bundle import ModelMeta

    data = {s: load_labeled_images(a.data, split=s) for s in ("PublicTest", "PrivateTest")}
    pub = np.stack(data["PublicTest"].images)
    y_pub = np.asarray(data["PublicTest"].y)
    priv, y_priv = np.stack(data["PrivateTest"].images), np.asarray(data["PrivateTest"].y)
    sets = {"clean PrivateTest": (priv, y_priv), "shifted PrivateTest": (camera_shift(priv, seed=1), y_priv)}
    # selection (the FER2013 protocol: select on PublicTest, report PrivateTest)
    sel_sets = {"clean PublicTest": (pub, y_pub), "shifted PublicTest": (camera_shift(pub, seed=0), y_pub)}
    unl = a.work / "unlabeled_shifted_publictest"
    if not unl.is_dir() or len(list(unl.glob("*.png"))) != len(pub):
        unl.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(camera_shift(pub, seed=0)):
            cv2.imwrite(str(unl / f"{i:05d}.png"), img)
    prep = ModelMeta.load(a.run / "metadata.json").preprocessing

    partial = a.out / "adapt_shift.partial.json"  # written after every step; --resume skips what it holds
    rep: dict = {
        "run": str(a.run),
        "data": str(a.data),
        "unlabeled": str(unl),
        "n_unlabeled": int(len(pub)),
        "transform": "corruptions.camera_shift",
        "float": {},
        "adapt": {},
        "int8": {},
        "crops_needed": {},
    }
    if a.resume and partial.is_file():
        rep = json.loads(partial.read_text())
    a.out.mkdir(parents=True, exist_ok=True)

    def save():
        partial.write_text(json.dumps(rep, indent=2) + "\n")

    if "before" not in rep["float"]:
        rep["float"]["before"] = {
            k: float_acc(a.run / "model.keras", x, y, prep) for k, (x, y) in (sets | sel_sets).items()
        }
        save()
    train_npz = a.work / "original_training_faces.npz"  # the run's training faces, read once for every variant
    if not train_npz.is_file():
        from edge_fer.train.data import load_dataset

        cfg = json.loads((a.run / "config.json").read_text())
        ds = load_dataset(cfg.get("data") or a.data, val_fraction=cfg.get("val_fraction", 0.1), seed=cfg.get("seed", 0))
        np.savez(train_npz, x=ds.splits["train"].x, y=ds.splits["train"].y)
    for i, (name, kw) in enumerate(VARIANTS.items()):
        out = a.work / f"adapted_{i}"
        if name in rep["float"] and (out / "model.keras").is_file():
            continue
        r = adapt(AdaptOptions(run_dir=a.run, unlabeled=unl, out=out, overwrite=True, data=train_npz, **kw))
        rep["adapt"][name] = {
            "dir": str(out),
            "seconds": r["seconds"],
            "autoencoder": r["autoencoder"],
            "changed_on_new_crops": r["predicted_on_new_crops"]["changed"],
        }
        rep["float"][name] = {k: float_acc(out / "model.keras", x, y, prep) for k, (x, y) in (sets | sel_sets).items()}
        logging.info("%s: %s", name, rep["float"][name])
        save()
    b0 = rep["float"]["before"]
    ok = [n for n in VARIANTS if b0["clean PublicTest"] - rep["float"][n]["clean PublicTest"] <= MAX_CLEAN_DROP]
    DEFAULT = max(ok, key=lambda n: rep["float"][n]["shifted PublicTest"]) if ok else list(VARIANTS)[-1]
    rep["selected"] = {
        "variant": DEFAULT,
        "rule": f"best shifted PublicTest with clean PublicTest down <= {MAX_CLEAN_DROP} pt",
    }
    mix_default = VARIANTS[DEFAULT]["mix"]
    # how many crops are needed: the default variant's batch-norm step on the first N new crops
    # (below edge-fer adapt's minimum too: the check is lifted here, for the measurement only)
    import edge_fer.train.adapt as adapt_mod

    adapt_mod.MIN_CROPS = 1
    for n in a.sizes:
        if str(n) in rep["crops_needed"]:
            continue
        sub = a.work / f"unlabeled_first_{n}"
        if not sub.is_dir():
            sub.mkdir(parents=True)
            for p in sorted(unl.glob("*.png"))[:n]:
                (sub / p.name).symlink_to(p)
        out = a.work / f"adapted_n{n}"
        adapt(
            AdaptOptions(
                run_dir=a.run, unlabeled=sub, out=out, overwrite=True, data=train_npz, mix=mix_default, ae_epochs=0
            )
        )
        rep["crops_needed"][str(n)] = {k: float_acc(out / "model.keras", x, y, prep) for k, (x, y) in sets.items()}
        save()
        logging.info("first %d crops: %s", n, rep["crops_needed"][str(n)])
    adapt_mod.MIN_CROPS = 100
    if not a.no_int8:
        conv = [
            ("before", a.run, None),
            ("after (selected)", Path(rep["adapt"][DEFAULT]["dir"]), None),
            ("after (selected), int8 calibrated on new crops", Path(rep["adapt"][DEFAULT]["dir"]), "calibration.npz"),
        ]
        for name, run, calib in conv:
            if name in rep["int8"]:
                continue
            bundle = a.work / f"{name.split()[0]}_{'newcalib' if calib else 'orig'}.tflite"
            convert_run(
                ConvertOptions(
                    source=run,
                    out=bundle,
                    quality=True,
                    max_drop=100.0,
                    latency_runs=20,
                    compile_edgetpu=False,
                    calib_data=(run / calib) if calib else None,
                )
            )
            rep["int8"][name] = int8_eval(bundle, sets)
            logging.info("int8 %s: %s", name, rep["int8"][name])
            save()
    (a.out / "adapt_shift.json").write_text(json.dumps(rep, indent=2) + "\n")
    md = markdown(rep)
    (a.out / "adapt_shift.md").write_text(md)
    print(md)


def markdown(rep: dict) -> str:
    f = rep["float"]
    b = f["before"]
    sel = rep["selected"]["variant"]
    L = [
        f"Adapted with {rep['n_unlabeled']} unlabeled shifted PublicTest crops; n=3589 per split. Selection rule: "
        f"{rep['selected']['rule']} -> **{sel}**.",
        "",
        "| model (float) | shifted PrivateTest | clean PrivateTest | change shifted | change clean | shifted PublicTest | clean PublicTest |",
        "|---|---|---|---|---|---|---|",
        f"| before adaptation | {b['shifted PrivateTest']:.2f} | {b['clean PrivateTest']:.2f} | | | {b['shifted PublicTest']:.2f} | {b['clean PublicTest']:.2f} |",
    ]
    for name in VARIANTS:
        r = f[name]
        L.append(
            f"| {name}{' (selected)' if name == sel else ''} | {r['shifted PrivateTest']:.2f} | {r['clean PrivateTest']:.2f} | "
            f"{r['shifted PrivateTest'] - b['shifted PrivateTest']:+.2f} | {r['clean PrivateTest'] - b['clean PrivateTest']:+.2f} | "
            f"{r['shifted PublicTest']:.2f} | {r['clean PublicTest']:.2f} |"
        )
    if rep["int8"]:
        L += [
            "",
            "| int8 bundle (runtime) | shifted PrivateTest | clean PrivateTest | shifted flagged low quality | clean flagged | gate threshold (from) |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in rep["int8"].items():
            s, c = r["shifted PrivateTest"], r["clean PrivateTest"]
            L.append(
                f"| {name} | {s['accuracy']:.2f} | {c['accuracy']:.2f} | {s['flagged_low_quality']:.1f}% | "
                f"{c['flagged_low_quality']:.1f}% | {r['threshold']:.4f} ({r['threshold_from']}) |"
            )
    if rep.get("crops_needed"):
        L += [
            "",
            f"Crops needed ({sel}, the first N shifted PublicTest crops; float PrivateTest):",
            "",
            "| N crops | shifted PrivateTest | clean PrivateTest |",
            "|---|---|---|",
            f"| 0 (before) | {b['shifted PrivateTest']:.2f} | {b['clean PrivateTest']:.2f} |",
        ]
        for n, r in rep["crops_needed"].items():
            L.append(f"| {n} | {r['shifted PrivateTest']:.2f} | {r['clean PrivateTest']:.2f} |")
        L.append(
            f"| {rep['n_unlabeled']} (all) | {f[sel]['shifted PrivateTest']:.2f} | {f[sel]['clean PrivateTest']:.2f} |"
        )
    L += [
        "",
        f"edge-fer adapt ({sel}) took {rep['adapt'][sel]['seconds']:.0f} s on 2 CPU cores for {rep['n_unlabeled']} crops.",
    ]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
