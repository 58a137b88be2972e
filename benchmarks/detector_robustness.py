"""Face-detector recall under the conditions real cameras give: turned and tilted heads, small
frames, dark and backlit scenes, mirror images, other resolutions (a benchmark, not a test).

    python benchmarks/detector_robustness.py --images ../shared/data/images \\
        --video ../shared/data/video/hamilton_clip.mp4 \\
        --json benchmarks/results/detector_robustness/robustness.json

Annotated material is made from what the project has: the hand-annotated frames of the shared clip
(``benchmarks/data/hamilton_faces.json``, 28 frames, 47 faces, with their ignore regions) and the shared
photos (``benchmarks/data/photo_faces.json``, 3 images, 4 faces). Each condition transforms the image
and its boxes alike:

* ``original``; ``rotate +-15`` / ``+-30`` degrees (about the centre, the canvas grown to keep every
  pixel, the border replicated; a face's true box becomes the upright box around its rotated box,
  shrunk to the same area, so a detector's upright box can still match it);
* ``width 320``: the image scaled down to 320 px wide; ``width 960`` / ``width 1280``: scaled up
  (other camera resolutions);
* ``dark``: gamma 2.2 darkening to about a fifth of the light; ``backlit``: the faces darkened to 40%
  while everything beyond 1.3x their box is lifted halfway to white;
* ``flip``: the mirror image.

Every detector runs its ``edge-fer run`` configuration (``--detector NAME`` with every other flag at its
default) on each image as a still: one full-frame pass, no window search, no tracker. A true box matches
a detection at IoU >= 0.5 (``benchmarks/detection_scoring.py``; rotated faces also at IoU >= 0.3, reported
apart); detections inside an ignore region count neither way. ``fer`` joins when importable (run with
its venv, see benchmarks/compare_fer.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
Box = tuple[float, float, float, float]


def rotate(img: np.ndarray, boxes: list[Box], deg: float) -> tuple[np.ndarray, list[Box]]:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), deg, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(round(h * s + w * c)), int(round(h * c + w * s))
    m[0, 2] += nw / 2.0 - w / 2.0
    m[1, 2] += nh / 2.0 - h / 2.0
    out = cv2.warpAffine(img, m, (nw, nh), borderMode=cv2.BORDER_REPLICATE)
    moved = []
    for x, y, bw, bh in boxes:
        pts = np.array([[x, y, 1], [x + bw, y, 1], [x, y + bh, 1], [x + bw, y + bh, 1]], np.float64) @ m.T
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        k = math.sqrt(bw * bh / max((x1 - x0) * (y1 - y0), 1e-9))  # same area as the face's own box
        cx, cy, ew, eh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * k, (y1 - y0) * k
        moved.append((cx - ew / 2, cy - eh / 2, ew, eh))
    return out, moved


def resize_to_width(img: np.ndarray, boxes: list[Box], width: int) -> tuple[np.ndarray, list[Box]]:
    f = width / img.shape[1]
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    out = cv2.resize(img, (width, max(1, int(round(img.shape[0] * f)))), interpolation=interp)
    return out, [(x * f, y * f, w * f, h * f) for x, y, w, h in boxes]


def dark(img: np.ndarray) -> np.ndarray:
    lut = (255.0 * (np.arange(256) / 255.0) ** 2.2).clip(0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def backlit(img: np.ndarray, faces: list[Box]) -> np.ndarray:
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.float32)
    for x, y, bw, bh in faces:
        cx, cy = x + bw / 2, y + bh / 2
        cv2.ellipse(mask, (int(cx), int(cy)), (int(bw * 0.65), int(bh * 0.65)), 0, 0, 360, 1.0, -1)
    k = max(3, int(min(h, w) * 0.05) | 1)
    mask = cv2.GaussianBlur(mask, (k, k), 0)[..., None]
    f = img.astype(np.float32)
    face = f * 0.4
    back = f * 0.5 + 127.5
    return (mask * face + (1 - mask) * back).clip(0, 255).astype(np.uint8)


def flip(img: np.ndarray, boxes: list[Box]) -> tuple[np.ndarray, list[Box]]:
    w = img.shape[1]
    return cv2.flip(img, 1), [(w - x - bw, y, bw, bh) for x, y, bw, bh in boxes]


CONDITIONS = (
    "original",
    "rotate -30",
    "rotate -15",
    "rotate +15",
    "rotate +30",
    "width 320",
    "width 960",
    "width 1280",
    "dark",
    "backlit",
    "flip",
)


def apply(cond: str, img: np.ndarray, faces: list[Box], ignore: list[Box]) -> tuple[np.ndarray, list[Box], list[Box]]:
    n = len(faces)
    both = faces + ignore
    if cond.startswith("rotate"):
        img, both = rotate(img, both, -float(cond.split()[1]))  # positive: counter-clockwise on screen
    elif cond.startswith("width"):
        img, both = resize_to_width(img, both, int(cond.split()[1]))
    elif cond == "dark":
        img = dark(img)
    elif cond == "backlit":
        img = backlit(img, faces)
    elif cond == "flip":
        img, both = flip(img, both)
    return img, both[:n], both[n:]


def material(images: Path | None, video: str | None, truth_path: Path) -> list[tuple[str, np.ndarray, list, list]]:
    """(name, BGR image, face boxes, ignore boxes) of every annotated image."""
    items = []
    if video:
        sys.path.insert(0, str(HERE))
        from compare_fer import load_frames
        from detection_scoring import load_ground_truth

        truth = load_ground_truth(truth_path)
        frames, _ = load_frames(video)
        for i, ft in sorted(truth.frames.items()):
            items.append((f"clip:{i}", frames[i], [f.box for f in ft.faces], list(ft.ignore)))
    if images:
        doc = json.loads((HERE / "data" / "photo_faces.json").read_text())
        for name, boxes in doc["faces"].items():
            img = cv2.imread(str(images / name))
            if img is None:
                raise SystemExit(f"detector_robustness: cannot read {images / name}")
            items.append((f"photo:{name}", img, [tuple(map(float, b)) for b in boxes], []))
    return items


def detectors(names: list[str]) -> dict[str, object]:
    from edge_fer.config import Config
    from edge_fer.detect import build_detector

    out: dict[str, object] = {}
    for n in names:
        cfg = replace(Config().detector, name=n)
        out[n] = build_detector(cfg, windows=False)  # a still: one full pass
    try:
        from fer.fer import FER

        out["fer"] = FER()
    except Exception as e:  # not installed here: reported, not fatal
        print(f"detector_robustness: fer not measured ({type(e).__name__}: {e})", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=Path, default=None, help="folder of the shared photos")
    ap.add_argument("--video", default=None, help="the annotated clip")
    ap.add_argument("--truth", type=Path, default=HERE / "data" / "hamilton_faces.json")
    ap.add_argument("--detectors", default="haar,yunet")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from detection_scoring import FrameTruth, TruthFace, match_frame

    items = material(a.images, a.video, a.truth)
    dets = detectors(a.detectors.split(","))
    rows = []
    for cond in CONDITIONS:
        for part in ("clip", "photo"):
            chosen = [it for it in items if it[0].startswith(part)]
            if not chosen:
                continue
            row: dict = {"condition": cond, "material": part, "images": len(chosen), "faces": 0}
            counts = {n: {"tp": 0, "tp_iou30": 0, "fp": 0} for n in dets}
            for _, img, faces, ignore in chosen:
                im, fb, ig = apply(cond, img, list(faces), list(ignore))
                ft = FrameTruth(tuple(TruthFace(tuple(b)) for b in fb), tuple(tuple(b) for b in ig))
                row["faces"] += len(fb)
                for n, d in dets.items():
                    if n == "fer":
                        found = [tuple(float(v) for v in e["box"]) for e in d.detect_emotions(im)]  # type: ignore[attr-defined]
                    else:
                        found = [tuple(float(v) for v in f.box) for f in d.detect(im)]  # type: ignore[attr-defined]
                    m = match_frame(ft, found, 0.5)
                    counts[n]["tp"] += m.tp
                    counts[n]["fp"] += len(m.false_positives)
                    counts[n]["tp_iou30"] += match_frame(ft, found, 0.3).tp
            for n, c in counts.items():
                f = max(row["faces"], 1)
                row[n] = {**c, "recall": round(c["tp"] / f, 4), "recall_iou30": round(c["tp_iou30"] / f, 4)}
            rows.append(row)
            cells = "  ".join(f"{n} {row[n]['recall']:.3f} ({row[n]['fp']} fp)" for n in dets)
            print(f"{cond:12s} {part:5s} {row['faces']:3d} faces  {cells}", flush=True)
    if a.json:
        from edge_fer import jsondoc
        from edge_fer.config import Config

        cfg = Config().detector
        body = {
            "command": "python benchmarks/"
            + Path(__file__).name
            + " "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "detectors": {
                n: (f"--detector {n}, defaults otherwise, full frame" if n != "fer" else "fer default") for n in dets
            },
            "defaults": {k: getattr(cfg, k) for k in ("scale", "min_size", "score_threshold", "nms_threshold")},
            "iou_threshold": 0.5,
            "conditions": list(CONDITIONS),
            "rows": rows,
        }
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        jsondoc.write(a.json, jsondoc.document("detector-robustness", body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
