"""Why no single framing of a detector's box matches FER2013's own crops (selection split only).

    python benchmarks/framing_spread.py --data ../shared/data/fer2013.zip --split PublicTest --sample 1500 \\
        --json benchmarks/results/yunet_framing/spread_publictest.json

On a random sample, each face is placed in a frame as ``edge-fer eval --detect`` does, and the default
detector (YuNet) runs on it. Reported: how much the dataset's face square varies against the detector's
box and against the eye-mouth distance (log standard deviation of the ratio; 0.17 is about +-17%), and
the runtime classifier's accuracy on (a) the dataset's crops, (b) the exact dataset square cut from the
same frame at margin 0 and (c) at the bundle's margin, (d) the detector's ``crop_box`` at framings
0.76 / 0.80 / 0.84, and (e) a square from the eye and mouth landmarks sized by the sample's median ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="PublicTest")
    ap.add_argument("--sample", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from edge_fer.train.data import load_labeled_images

    from edge_fer.classify import Classifier
    from edge_fer.detect import create_detector
    from edge_fer.evaluate import DetectOptions, _with_context, square_crop
    from edge_fer.preprocess import face_crops, resize

    clf = Classifier.from_file(None, device="cpu", threads=1)
    pre, spec = clf.preprocessing, clf.input_spec
    faces = load_labeled_images(a.data, a.split, None)
    idx = np.random.default_rng(a.seed).permutation(len(faces.images))[: a.sample]
    opts = DetectOptions()
    det = create_detector(opts.detector, scale=opts.scale, min_size=opts.min_size)
    rows = []
    for i in idx:
        img = faces.images[i]
        frame = _with_context(img, opts.min_side, opts.pad)
        found = det.detect(frame)
        if not found:
            continue
        f = max(found, key=lambda f: f.box[2] * f.box[3])
        side = opts.min_side * max(img.shape[:2]) / min(img.shape[:2])
        cx, cy = frame.shape[1] / 2.0, frame.shape[0] / 2.0
        lm = f.landmarks
        eye, mouth = (lm[0] + lm[1]) / 2, (lm[3] + lm[4]) / 2
        rows.append(
            {
                "frame": frame,
                "box": f.box,
                "y": int(faces.y[i]),
                "side": side,
                "centre": (cx, cy),
                "d": float(np.linalg.norm(mouth - eye)),
                "mid": (eye + mouth) / 2,
                "aligned": resize(square_crop(img), spec.width, spec.height, pre.resize),
            }
        )
    ys = np.array([r["y"] for r in rows])

    def accuracy(crops: list) -> float:
        probs = np.concatenate(
            [clf.predict_raw(clf.prepare_crops(crops[i : i + 64])) for i in range(0, len(crops), 64)]
        )
        return round(float((probs.argmax(1) == ys).mean()), 4)

    def square(r: dict) -> tuple[int, int, int, int]:
        s = r["side"]
        return int(r["centre"][0] - s / 2), int(r["centre"][1] - s / 2), int(s), int(s)

    S = np.array([r["side"] for r in rows])
    longer = np.array([max(r["box"][2], r["box"][3]) for r in rows])
    d = np.array([r["d"] for r in rows])
    out: dict = {
        "split": a.split,
        "sample": int(len(idx)),
        "found": len(rows),
        "fer_side_over_box_longer_side": {
            "median": round(float(np.median(S / longer)), 4),
            "log_std": round(float(np.std(np.log(S / longer))), 4),
        },
        "fer_side_over_eye_mouth": {
            "median": round(float(np.median(S / d)), 4),
            "log_std": round(float(np.std(np.log(S / d))), 4),
        },
        "accuracy": {},
    }
    acc = out["accuracy"]
    acc["dataset_crops"] = accuracy([r["aligned"] for r in rows])
    p0 = replace(pre, margin=0.0)
    acc["dataset_square_margin_0"] = accuracy([face_crops(r["frame"], [square(r)], p0, 48, 48)[0] for r in rows])
    acc[f"dataset_square_margin_{pre.margin:g}"] = accuracy(
        [face_crops(r["frame"], [square(r)], pre, 48, 48)[0] for r in rows]
    )
    own = det.framing
    for fr in (0.76, 0.80, 0.84):
        det.framing = fr
        acc[f"detector_framing_{fr:g}"] = accuracy(
            [face_crops(r["frame"], [det.crop_box(r["box"])], pre, 48, 48)[0] for r in rows]
        )
    det.framing = own
    k = float(np.median(S / d))
    off = np.median(np.array([(np.array(r["centre"]) - r["mid"]) / r["d"] for r in rows]), axis=0)
    lm_crops = []
    for r in rows:
        c = r["mid"] + off * r["d"]
        s = k * r["d"] / (1 + 2 * pre.margin)  # the bundle's margin widens it back to k x d
        lm_crops.append(
            face_crops(r["frame"], [(int(c[0] - s / 2), int(c[1] - s / 2), int(s), int(s))], pre, 48, 48)[0]
        )
    acc["landmark_square"] = accuracy(lm_crops)
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
