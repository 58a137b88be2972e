"""FER2013 test faces with and without a near-duplicate in its training split, and a bundle's accuracy
on each part (not a test).

    python benchmarks/fer2013_overlap.py --data ../shared/data/fer2013.zip \\
        --model edge_fer/models/default_int8.tflite [--model other.tflite] \\
        --json benchmarks/results/fer2013_overlap/overlap.json

About 1,100 FER2013 training faces are near-duplicates of test faces: the same photo, sometimes
cropped or mirrored differently. Published accuracies include them, and so do this project's; a gain
that comes from remembering those photos does not carry over to new faces. This script finds, for
every PublicTest and PrivateTest face, its most similar training face: each face is shrunk to 16x16
(area averaging, which forgives small shifts and re-encoding), centred and scaled to unit length,
and compared by cosine similarity with every training face and its mirror image. A test face whose
best match reaches ``--threshold`` (default 0.95) counts as a near-duplicate.

For each bundle, accuracy and macro-F1 on the whole split, on the near-duplicates and on the rest,
through the runtime's own Classifier on the aligned crops (what ``edge-fer eval`` measures). The
JSON lists the near-duplicate test files' indices (in the split's order) and a histogram of the best
similarities, so the threshold can be judged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SIDE = 16


def features(x: np.ndarray) -> np.ndarray:
    """(N, 48, 48) uint8 faces -> (N, SIDE*SIDE) float32 unit vectors (mean removed)."""
    import cv2

    small = np.stack([cv2.resize(f, (SIDE, SIDE), interpolation=cv2.INTER_AREA) for f in x]).astype(np.float32)
    v = small.reshape(len(x), -1)
    v -= v.mean(axis=1, keepdims=True)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(n, 1e-6)


def best_match(test: np.ndarray, train: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """For each test face: the highest cosine similarity to a training face or its mirror, and that
    training face's index."""
    ft = features(train)
    fm = features(train[:, :, ::-1])
    bank = np.concatenate([ft, fm])
    fx = features(test)
    best = np.empty(len(test), np.float32)
    idx = np.empty(len(test), np.int64)
    for i in range(0, len(test), chunk):
        sim = fx[i : i + chunk] @ bank.T
        j = sim.argmax(axis=1)
        best[i : i + chunk] = sim[np.arange(len(j)), j]
        idx[i : i + chunk] = j % len(train)
    return best, idx


def scores(pred: np.ndarray, y: np.ndarray, k: int) -> dict:
    if not len(y):
        return {"n": 0, "accuracy": None, "macro_f1": None}
    f1 = []
    for c in range(k):
        tp = int(((pred == c) & (y == c)).sum())
        fp = int(((pred == c) & (y != c)).sum())
        fn = int(((pred != c) & (y == c)).sum())
        f1.append(2 * tp / max(1, 2 * tp + fp + fn))
    return {"n": int(len(y)), "accuracy": round(float((pred == y).mean()), 6), "macro_f1": round(float(np.mean(f1)), 6)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="FER2013 (.zip of image folders or the .csv)")
    ap.add_argument("--model", action="append", default=[], type=Path, help="bundle to evaluate (repeatable)")
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)

    from edge_fer.convert.data import load_labeled

    from edge_fer.classify import Classifier

    train = load_labeled(a.data, "calibration", (48, 48))
    splits = {
        "PublicTest": load_labeled(a.data, "evaluation", (48, 48), split="val"),
        "PrivateTest": load_labeled(a.data, "evaluation", (48, 48)),
    }
    out: dict = {
        "data": str(a.data),
        "method": f"cosine similarity of {SIDE}x{SIDE} area-averaged, mean-removed faces, training faces and their mirrors",
        "threshold": a.threshold,
        "train_faces": len(train),
        "splits": {},
    }
    for name, faces in splits.items():
        best, idx = best_match(faces.x, train.x)
        dup = best >= a.threshold
        hist, edges = np.histogram(np.clip(best, 0.0, 1.0), bins=np.linspace(0.0, 1.0, 21))
        row: dict = {
            "faces": len(faces),
            "near_duplicates": int(dup.sum()),
            "near_duplicate_share": round(float(dup.mean()), 4),
            "same_label_as_match": round(float((faces.y[dup] == train.y[idx[dup]]).mean()), 4) if dup.any() else None,
            "identical": int((best >= 0.9999).sum()),
            "best_similarity_histogram": {
                f"{lo:.2f}-{hi:.2f}": int(n) for lo, hi, n in zip(edges[:-1], edges[1:], hist) if n
            },
            "near_duplicate_indices": [int(i) for i in np.flatnonzero(dup)],
            "models": {},
        }
        for m in a.model:
            clf = Classifier.from_file(m, device="cpu", threads=1)
            batch = clf.prepare_crops(list(faces.x))
            pred = np.concatenate([clf.predict_raw(batch[i : i + 256]) for i in range(0, len(batch), 256)]).argmax(1)
            k = len(clf.labels)
            row["models"][str(m)] = {
                "all": scores(pred, faces.y, k),
                "near_duplicates": scores(pred[dup], faces.y[dup], k),
                "no_near_duplicate": scores(pred[~dup], faces.y[~dup], k),
            }
        out["splits"][name] = row
        print(f"{name}: {int(dup.sum())} of {len(faces)} faces have a near-duplicate in Training (>= {a.threshold})")
        for m, r in row["models"].items():
            print(
                "  "
                + "  ".join(
                    f"{part} {100 * v['accuracy']:.2f}% (n={v['n']})"
                    for part, v in r.items()
                    if v["accuracy"] is not None
                )
                + f"  {m}"
            )
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
