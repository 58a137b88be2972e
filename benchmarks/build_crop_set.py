"""Build the face / not-face crop set of the quality-gate benchmark (benchmarks/data/crops/).

Candidates, all cut the way the runtime cuts a face (square box widened by the bundle's margin,
resized to 48x48 gray with INTER_AREA: ``edge_fer.preprocess.face_crops``):

* ``det``: every box the runtime's detector returns on every 5th frame of the shared video
  (data/video/hamilton_clip.mp4) and on the shared photos (data/images/*.jpg), with the Haar detector
  at the runtime's default (scale 0.5, min_size 30), at full resolution (scale 1.0, min_size 20) and
  at full resolution with min_neighbors 2 (a loose setting that makes more false positives); boxes that overlap an earlier box of the same frame
  (IoU > 0.5) are left out.
* ``bg``: background patches: seeded random squares (side 40-160 px) of the same frames and photos
  that overlap no detection.

Labels (``face`` / ``not_face``) were then given by hand, looking at the crops
(``benchmarks/data/crops/labels.csv``; this script never overwrites that file). Run from the repo root:

    python benchmarks/build_crop_set.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from edge_fer.bundle import Preprocessing
from edge_fer.detect import create_detector
from edge_fer.preprocess import face_crops
from edge_fer.track import iou

OUT = Path(__file__).resolve().parent / "data" / "crops"


def frames(data: Path, every: int):
    cap = cv2.VideoCapture(str(data / "video" / "hamilton_clip.mp4"))
    i = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if i % every == 0:
            yield f"hamilton_clip.mp4#{i}", img
        i += 1
    for p in sorted((data / "images").glob("*.jpg")):
        yield p.name, cv2.imread(str(p))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--bg-per-frame", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    pre = Preprocessing()
    dets = {
        "haar@0.5": create_detector("haar", scale=0.5, min_size=30),
        "haar@1.0": create_detector("haar", scale=1.0, min_size=20),
        "haar@1.0,mn2": create_detector("haar", scale=1.0, min_size=20, min_neighbors=2),
    }
    rng = np.random.default_rng(a.seed)
    rows = []
    for src, img in frames(a.data, a.every):
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        boxes: list[tuple] = []
        for dname, det in dets.items():
            for f in det.detect(gray):
                if any(iou(f.box, b) > 0.5 for b, _ in boxes):
                    continue
                boxes.append((tuple(int(v) for v in f.box), dname))
        h, w = gray.shape
        bg = []
        for _ in range(200):
            if len(bg) >= a.bg_per_frame * (3 if not src.startswith("hamilton") else 1):
                break
            s = int(rng.integers(40, min(160, h, w)))
            x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
            if all(iou((x, y, s, s), b) == 0 for b, _ in boxes):
                bg.append(((x, y, s, s), "background"))
        for box, kind in boxes + bg:
            crop = face_crops(gray, [box], pre, 48, 48)[0]
            name = f"c{len(rows):04d}.png"
            cv2.imwrite(str(OUT / name), crop)
            rows.append(
                {
                    "file": name,
                    "source": src,
                    "box": " ".join(map(str, box)),
                    "kind": "bg" if kind == "background" else "det",
                    "detector": kind,
                }
            )
    with open(OUT / "candidates.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    print(f"{len(rows)} crops ({sum(r['kind'] == 'det' for r in rows)} detections) in {OUT}")


if __name__ == "__main__":
    main()
