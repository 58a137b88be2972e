"""Can one temperature reach the ECE goal, or does it take one scale per expression? (not a test)

    python benchmarks/calibration_methods.py --model runs/p150_uncal.tflite \\
        --data ../shared/data/fer2013.zip --json benchmarks/results/calibration/methods_publictest.json

A temperature keeps every top-1 label (accuracy unchanged); per-expression scales change some. This
script answers, on the selection split only (PublicTest; PrivateTest is never read), how low a
temperature can take the expected calibration error, and what the per-expression scales cost in
changed labels. It reads the int8 graph's own logits (the output softmax's input, as ``edge-fer
convert`` does), then, over class-stratified halves (each half fitted, the other scored, ``--repeats``
times, the same folds for every method):

* ``temperature_nll``: one temperature fitted by NLL (what ``--calibration-method temperature`` does);
* ``temperature_ece``: the temperature with the lowest ECE on the fitting half (a grid of
  ``softmax(a * z)``, a = 1.00-4.00 by 0.01): the best a temperature can do for this figure;
* ``vector``: one scale per expression fitted by NLL (what the shipped file has);

and, on the whole split, the lowest ECE any single temperature reaches (in-sample, so optimistic).
Each method's held-out ECE and NLL, and the held-out accuracy change against the raw logits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

GRID = np.round(np.arange(1.0, 4.0001, 0.01), 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path, help="an int8 bundle, before calibration")
    ap.add_argument("--data", required=True, type=Path, help="FER2013 (.zip of image folders or the .csv)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)

    from edge_fer.convert.calibrate import _scaled_probs, bundle_logits, fit_scales
    from edge_fer.convert.data import load_labeled

    from edge_fer import calibration
    from edge_fer.classify import Classifier

    bundle = a.model.read_bytes()
    faces = load_labeled(a.data, "evaluation", (48, 48), split="val")
    clf = Classifier(bundle, source=str(a.model), device="cpu", threads=1)
    z = bundle_logits(bundle, clf.prepare_crops(list(faces.x)))
    y = np.asarray(faces.y, np.int64)
    k = z.shape[1]

    def temp(zz: np.ndarray, s: float) -> np.ndarray:
        return _scaled_probs(zz, np.full(k, s))

    rng = np.random.default_rng(0)
    rows: dict[str, list[dict]] = {"temperature_nll": [], "temperature_ece": [], "vector": []}
    for _ in range(a.repeats):
        first = np.zeros(len(y), bool)
        for c in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == c))
            first[members[: len(members) // 2]] = True
        for tr, te in ((first, ~first), (~first, first)):
            raw_acc = float((z[te].argmax(1) == y[te]).mean())
            fits = {
                "temperature_nll": np.full(k, fit_scales(z[tr], y[tr], "temperature")[0]),
                "temperature_ece": np.full(
                    k, GRID[int(np.argmin([calibration.ece(temp(z[tr], s), y[tr]) for s in GRID]))]
                ),
                "vector": fit_scales(z[tr], y[tr], "vector"),
            }
            for name, scales in fits.items():
                p = _scaled_probs(z[te], scales)
                rows[name].append(
                    {
                        "ece": calibration.ece(p, y[te]),
                        "nll": calibration.nll(p, y[te]),
                        "accuracy_change_points": 100 * (float((p.argmax(1) == y[te]).mean()) - raw_acc),
                        "scales": scales,
                    }
                )
    in_sample = [calibration.ece(temp(z, s), y) for s in GRID]
    best = int(np.argmin(in_sample))
    out: dict = {
        "what": "held-out calibration figures per method on the selection split (PublicTest) only",
        "model": a.model.name,
        "data": a.data.name,
        "split": "PublicTest",
        "n": int(len(y)),
        "folds": 2 * a.repeats,
        "raw_accuracy": round(float((z.argmax(1) == y).mean()), 6),
        "methods": {
            name: {
                "heldout_ece": round(float(np.mean([r["ece"] for r in v])), 4),
                "heldout_ece_sd": round(float(np.std([r["ece"] for r in v])), 4),
                "heldout_nll": round(float(np.mean([r["nll"] for r in v])), 4),
                "heldout_accuracy_change_points": round(float(np.mean([r["accuracy_change_points"] for r in v])), 3),
                "largest_accuracy_change_points": round(float(max(abs(r["accuracy_change_points"]) for r in v)), 3),
                "softmax_multiplier_range": [
                    round(float(min(r["scales"].min() for r in v)), 3),
                    round(float(max(r["scales"].max() for r in v)), 3),
                ],
            }
            for name, v in rows.items()
        },
        "lowest_in_sample_ece_of_one_temperature": {"ece": round(in_sample[best], 4), "multiplier": float(GRID[best])},
    }
    for name, m in out["methods"].items():
        print(
            f"{name:16s} held-out ECE {m['heldout_ece']:.4f} (sd {m['heldout_ece_sd']:.4f}), NLL {m['heldout_nll']:.4f}, "
            f"accuracy {m['heldout_accuracy_change_points']:+.2f} points (largest {m['largest_accuracy_change_points']:.2f})"
        )
    lo = out["lowest_in_sample_ece_of_one_temperature"]
    print(
        f"lowest ECE of any one temperature, in-sample on all of PublicTest: {lo['ece']:.4f} (multiplier {lo['multiplier']})"
    )
    from edge_fer import jsondoc

    jsondoc.write(a.json, out, indent=1, mkdir=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
