"""Where the accuracy lost on the detector's crops goes: the shipped model on the same faces cut
several ways (selection split only: PublicTest by default).

For every face the runtime's default detector (YuNet) finds, given context as ``edge-fer eval
--detect`` gives it (upscaled to 160 px, a replicated border of 25%):

* ``aligned``: the dataset's own crop, as the model was trained on it;
* ``resampled``: the same crop upscaled to 160 px and back to 48 (the interpolation of the detector
  path without its framing);
* ``jittered``: the same crop after the training warp (mirror, rotation, shift, zoom), three seeds;
* ``box``: the runtime's crop around the detector's box (its framing, the bundle's margin);
* ``landmarks_similarity`` / ``landmarks_scale_shift``: the face warped so that the detector's five
  landmarks land on their mean position in the dataset's crops (measured on ``--template-faces``
  Training faces), with rotation or with scale and shift only.

    python benchmarks/detector_crop_gap.py --data ../shared/data/fer2013.zip \\
        --json benchmarks/results/detector_crop_gap/publictest.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

CONTEXT_SIDE, CONTEXT_PAD = 160, 0.25


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="bundle (default: the shipped one)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="PublicTest")
    ap.add_argument("--template-faces", type=int, default=6000, help="Training faces for the landmark template")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.split == "PrivateTest":
        print("note: PrivateTest is for reporting a final choice once, not for choosing", file=sys.stderr)

    from edge_fer.train.batches import warp_faces
    from edge_fer.train.data import load_labeled_images

    from edge_fer.bench.machine import machine_info
    from edge_fer.classify import Classifier
    from edge_fer.detect import create_detector
    from edge_fer.evaluate import DetectOptions, _with_context, detector_crop

    t0 = time.perf_counter()
    clf = Classifier.from_file(args.model, device="cpu", threads=1)
    spec, pre = clf.input_spec, clf.preprocessing
    size = (spec.width, spec.height)
    det = create_detector("yunet")
    opts = DetectOptions(min_side=CONTEXT_SIDE, pad=CONTEXT_PAD)

    def largest(img: np.ndarray):
        """The frame given context, and the largest face the detector finds in it (or None)."""
        frame = _with_context(img, CONTEXT_SIDE, CONTEXT_PAD)
        found = det.detect(frame)
        return frame, (max(found, key=lambda f: f.box[2] * f.box[3]) if found else None)

    def to_image_coords(img: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Landmarks in a context frame, mapped back to the dataset image's pixels."""
        h, w = img.shape[:2]
        f = CONTEXT_SIDE / min(h, w)
        border = int(round(CONTEXT_PAD * max(int(round(h * f)), int(round(w * f)))))
        return (landmarks - border) / f

    train = load_labeled_images(args.data, "Training")
    pick = np.random.default_rng(0).permutation(len(train.images))[: args.template_faces]
    marks = []
    for i in pick:
        _, face = largest(train.images[i])
        if face is not None and face.landmarks is not None:
            marks.append(to_image_coords(train.images[i], face.landmarks))
    template = np.mean(marks, axis=0)
    side = train.images[0].shape[0]

    faces = load_labeled_images(args.data, args.split)
    kept, frames, boxes = [], [], []
    for i, img in enumerate(faces.images):
        frame, face = largest(img)
        if face is not None:
            kept.append(i)
            frames.append(frame)
            boxes.append(face)
    y = np.asarray(faces.y)[kept]
    imgs = np.stack([faces.images[i] for i in kept])

    def accuracy(crops) -> float:
        crops = list(crops)
        p = np.concatenate([clf.predict_raw(clf.prepare_crops(crops[i : i + 64])) for i in range(0, len(crops), 64)])
        return round(float((p.argmax(1) == y).mean()), 4)

    def warp_to_template(frame: np.ndarray, landmarks: np.ndarray, rotate: bool) -> np.ndarray:
        src = landmarks.astype(np.float32)
        dst = (template * spec.width / side).astype(np.float32)
        if rotate:
            m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
        else:
            s = float(np.sqrt(((dst - dst.mean(0)) ** 2).sum() / ((src - src.mean(0)) ** 2).sum()))
            t = dst.mean(0) - s * src.mean(0)
            m = np.array([[s, 0, t[0]], [0, s, t[1]]], np.float32)
        interp = cv2.INTER_AREA if abs(m[0, 0]) < 1 else cv2.INTER_LINEAR
        return cv2.warpAffine(frame, m, size, flags=interp, borderMode=cv2.BORDER_REPLICATE)

    def resampled(img: np.ndarray) -> np.ndarray:
        big = cv2.resize(img, (CONTEXT_SIDE, CONTEXT_SIDE), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(big, size, interpolation=cv2.INTER_AREA)

    rows = {
        "aligned": accuracy(imgs),
        "resampled": accuracy(resampled(im) for im in imgs),
        "jittered": [accuracy(warp_faces(imgs, np.random.default_rng(s))) for s in range(3)],
        "box": accuracy(detector_crop(det, faces.images[i], opts, pre.margin, size, pre.resize) for i in kept),
        "landmarks_similarity": accuracy(warp_to_template(f, b.landmarks, True) for f, b in zip(frames, boxes)),
        "landmarks_scale_shift": accuracy(warp_to_template(f, b.landmarks, False) for f, b in zip(frames, boxes)),
    }
    result = {
        "command": " ".join(["benchmarks/detector_crop_gap.py", *(argv if argv is not None else sys.argv[1:])]),
        "model": Path(args.model).name if args.model else "default",
        "split": faces.split,
        "faces": len(faces.images),
        "faces_found": len(kept),
        "template_faces": len(marks),
        "template_landmarks": np.round(template, 2).tolist(),
        "accuracy_on_found_faces": rows,
        "gap_box_vs_aligned_points": round(100 * (rows["aligned"] - rows["box"]), 2),
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": machine_info(clf),
    }
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
