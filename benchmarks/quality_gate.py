"""Does the autoencoder's reconstruction error earn its place as a crop-quality gate?

Everything goes through the runtime's own classes (``Classifier``, ``QualityGate``: int8 LiteRT):

(a) **face / not-face**: the hand-labelled crops of ``benchmarks/data/crops`` (the runtime detector's
    boxes on the shared video and photos, plus background patches; see ``build_crop_set.py``):
    how many non-faces the gate rejects and how many real faces it keeps, at the bundle's threshold
    and at the 90th/95th percentiles of the validation faces; the classifier's top probability as the
    baseline (rejecting below the threshold that keeps as many faces); AUROC of each score.
(b) **selective prediction** on FER2013 PrivateTest, clean and under ``corruptions.corrupt``:
    accuracy at coverage 100..30 % when the faces are kept by the lowest reconstruction error, by
    the classifier's top probability (the standard baseline), and by both combined (a weighted
    average of the two ranks; the weight chosen on PublicTest under the same corruption, by the area
    under the risk-coverage curve, then applied to PrivateTest). Also the cost: the gate's latency per
    face, batch 1, next to the classifier's.

    python benchmarks/quality_gate.py --model fer_int8.tflite --data ../shared/data/fer2013.zip \
        --out benchmarks/results/quality_gate
writes ``quality_gate.json`` and ``quality_gate.md`` (the tables of docs/autoencoder.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corruptions import corrupt  # noqa: E402

from edge_fer.classify import Classifier  # noqa: E402
from edge_fer.quality import QualityGate, quality_path  # noqa: E402
from edge_fer.stats import summarize_ms  # noqa: E402

CROPS = Path(__file__).resolve().parent / "data" / "crops"
COVERAGES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # weight of the reconstruction-error rank in the combination


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties count half."""
    s = np.concatenate([pos, neg])
    r = np.argsort(np.argsort(s, kind="mergesort"), kind="mergesort").astype(np.float64) + 1
    # average ranks of ties
    _, inv, cnt = np.unique(s, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=r)
    r = (sums / cnt)[inv]
    n1, n0 = len(pos), len(neg)
    return float((r[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def rank01(v: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(v, kind="mergesort"), kind="mergesort") / max(1, len(v) - 1)


def scores(conf: np.ndarray, err: np.ndarray, w: float) -> np.ndarray:
    """Higher = kept first: (1 - w) * rank(confidence) + w * rank(-error)."""
    return (1 - w) * rank01(conf) + w * rank01(-err)


def coverage_curve(correct: np.ndarray, keep_score: np.ndarray) -> tuple[dict, float]:
    order = np.argsort(-keep_score, kind="mergesort")
    c = correct[order].astype(np.float64)
    cum = np.cumsum(c) / np.arange(1, len(c) + 1)
    at = {
        f"{int(round(100 * cv))}%": round(100 * float(cum[max(1, int(round(cv * len(c)))) - 1]), 2) for cv in COVERAGES
    }
    aurc = float(np.mean(1 - cum))  # area under the risk-coverage curve (lower is better)
    return at, round(100 * aurc, 3)


def run_faces(clf: Classifier, gate: QualityGate, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs, errs = [], []
    for i in range(0, len(x), 256):
        b = clf.prepare_crops(list(x[i : i + 256]))
        probs.append(clf.predict_raw(b))
        errs.append(gate.errors(b, clf.input_spec))
    return np.concatenate(probs), np.concatenate(errs)


def part_a(clf: Classifier, gate: QualityGate) -> dict:
    rows = [r for r in csv.DictReader(open(CROPS / "labels.csv")) if r["label"] in ("face", "not_face")]
    x = np.stack([cv2.imread(str(CROPS / r["file"]), cv2.IMREAD_GRAYSCALE) for r in rows])
    is_face = np.array([r["label"] == "face" for r in rows])
    kinds = {r["file"]: r for r in csv.DictReader(open(CROPS / "candidates.csv"))}
    is_det = np.array([kinds[r["file"]]["kind"] == "det" for r in rows])
    probs, err = run_faces(clf, gate, x)
    conf = probs.max(1)
    pct = gate.calibration.get("percentiles", {})
    thresholds = {f"bundle (p{gate.calibration.get('percentile', '?')})": gate.threshold}
    for p in ("95", "90"):
        if p in pct:
            thresholds[f"p{p}"] = float(pct[p])
    out = {
        "n_faces": int(is_face.sum()),
        "n_not_faces": int((~is_face).sum()),
        "n_not_faces_detector": int((~is_face & is_det).sum()),
        "n_not_faces_background": int((~is_face & ~is_det).sum()),
        "auroc_error": round(auroc(-err[is_face], -err[~is_face]), 4),
        "auroc_confidence": round(auroc(conf[is_face], conf[~is_face]), 4),
        "rows": [],
    }
    for name, t in thresholds.items():
        low = err > t
        kept = float(np.mean(~low[is_face]))
        # the baseline: reject on low confidence, at the threshold that keeps the same share of faces
        ct = float(np.quantile(conf[is_face], 1 - kept)) if kept < 1 else -1.0
        clow = conf < ct
        out["rows"].append(
            {
                "threshold": name,
                "value": round(float(t), 6),
                "faces_kept": int((~low & is_face).sum()),
                "not_faces_rejected": int((low & ~is_face).sum()),
                "detector_fp_rejected": int((low & ~is_face & is_det).sum()),
                "background_rejected": int((low & ~is_face & ~is_det).sum()),
                "confidence_faces_kept": int((~clow & is_face).sum()),
                "confidence_not_faces_rejected": int((clow & ~is_face).sum()),
            }
        )
    out["per_crop"] = [
        {"file": r["file"], "label": r["label"], "error": round(float(e), 6), "confidence": round(float(c), 4)}
        for r, e, c in zip(rows, err, conf)
    ]
    return out


def part_b(clf: Classifier, gate: QualityGate, data: str, seed: int) -> dict:
    from edge_fer.train.data import load_labeled_images

    res: dict = {}
    sets = {}
    for split in ("PublicTest", "PrivateTest"):
        li = load_labeled_images(data, split=split)
        x = np.stack(
            [cv2.resize(im, (48, 48), interpolation=cv2.INTER_AREA) if im.shape != (48, 48) else im for im in li.images]
        )
        y = np.asarray(li.y)
        sets[split] = (x, y)
    for cond in ("clean", "corrupted"):
        curves = {}
        for split, (x, y) in sets.items():
            xs = x if cond == "clean" else corrupt(x, seed + (0 if split == "PublicTest" else 1))
            probs, err = run_faces(clf, gate, xs)
            curves[split] = (probs.argmax(1) == y, probs.max(1), err)
        # choose the combination weight on PublicTest
        cor, conf, err = curves["PublicTest"]
        aurcs = {w: coverage_curve(cor, scores(conf, err, w))[1] for w in WEIGHTS}
        w_best = min(WEIGHTS, key=lambda w: (aurcs[w], w))
        cor, conf, err = curves["PrivateTest"]
        rows = {}
        for name, s in (
            ("confidence", conf),
            ("reconstruction error", -err),
            (f"combined (w={w_best})", scores(conf, err, w_best)),
            ("random", np.random.default_rng(seed).random(len(cor))),
        ):
            at, aurc = coverage_curve(cor, s)
            rows[name] = {"accuracy_at_coverage": at, "aurc": aurc}
        res[cond] = {
            "n": int(len(cor)),
            "accuracy": round(100 * float(cor.mean()), 2),
            "flagged_low_quality": round(100 * float(np.mean(err > gate.threshold)), 2),
            "mean_error": round(float(err.mean()), 6),
            "publictest_aurc_by_weight": {str(k): v for k, v in aurcs.items()},
            "weight": w_best,
            "curves": rows,
        }
    return res


def latency(clf: Classifier, gate: QualityGate, runs: int = 300) -> dict:
    x = np.full((1, 48, 48), 128, np.uint8)
    b = clf.prepare_crops(list(x))
    out = {}
    for name, fn in (
        ("classifier", lambda: clf.predict_raw(b)),
        ("quality gate", lambda: gate.errors(b, clf.input_spec)),
    ):
        for _ in range(20):
            fn()
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        s = summarize_ms(ts)  # the one percentile helper of the runtime and edge-fer bench
        out[name] = {"p50_ms": s["p50_ms"], "p90_ms": s["p90_ms"]}
    return out


def markdown(rep: dict) -> str:
    a, b, lat = rep["a"], rep["b"], rep["latency"]
    L = [
        "### (a) Detector false positives and background vs real faces",
        f"{a['n_faces']} faces, {a['n_not_faces']} not-faces ({a['n_not_faces_detector']} detector false positives, "
        f"{a['n_not_faces_background']} background patches). AUROC face vs not-face: reconstruction error "
        f"{a['auroc_error']:.3f}, classifier confidence {a['auroc_confidence']:.3f}.",
        "",
        "| threshold | MSE | faces kept | not-faces rejected | of which detector FPs | background | confidence baseline: faces kept / not-faces rejected |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in a["rows"]:
        L.append(
            f"| {r['threshold']} | {r['value']:.4f} | {r['faces_kept']}/{a['n_faces']} | {r['not_faces_rejected']}/{a['n_not_faces']} | "
            f"{r['detector_fp_rejected']}/{a['n_not_faces_detector']} | {r['background_rejected']}/{a['n_not_faces_background']} | "
            f"{r['confidence_faces_kept']}/{a['n_faces']} / {r['confidence_not_faces_rejected']}/{a['n_not_faces']} |"
        )
    for cond in ("clean", "corrupted"):
        c = b[cond]
        L += [
            "",
            f"### (b) Selective prediction, FER2013 PrivateTest, {cond} (n={c['n']}, accuracy {c['accuracy']:.2f}%, "
            f"{c['flagged_low_quality']:.1f}% flagged low quality)",
            "| kept by | "
            + " | ".join(next(iter(c["curves"].values()))["accuracy_at_coverage"])
            + " | AURC (lower is better) |",
            "|---|" + "---|" * (len(COVERAGES) + 1),
        ]
        for name, r in c["curves"].items():
            L.append(
                f"| {name} | "
                + " | ".join(f"{v:.2f}" for v in r["accuracy_at_coverage"].values())
                + f" | {r['aurc']:.2f} |"
            )
    L += ["", "### Cost per face (int8, LiteRT, 1 thread, batch 1)", "| model | median ms | p90 ms |", "|---|---|---|"]
    for k, v in lat.items():
        L.append(f"| {k} | {v['p50_ms']:.3f} | {v['p90_ms']:.3f} |")
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="classifier bundle; its autoencoder is <stem>_ae.tflite")
    ap.add_argument("--quality-model", default=None)
    ap.add_argument("--data", default="../shared/data/fer2013.zip")
    ap.add_argument("--out", default="benchmarks/results/quality_gate")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    clf = Classifier.from_file(a.model, threads=1)
    gate = QualityGate.from_file(a.quality_model or quality_path(a.model), threads=1)
    rep = {
        "model": str(a.model),
        "quality_model": str(gate.source),
        "threshold": gate.threshold,
        "calibration": gate.calibration,
        "a": part_a(clf, gate),
        "b": part_b(clf, gate, a.data, a.seed),
        "latency": latency(clf, gate),
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality_gate.json").write_text(json.dumps(rep, indent=2) + "\n")
    md = markdown(rep)
    (out / "quality_gate.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
