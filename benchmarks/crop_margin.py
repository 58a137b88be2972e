"""How each detector frames a face compared with FER2013's crops, and the accuracy of a bundle on
the crops the runtime cuts around the detector's box at several margins (selection split only).

Each image is placed in a frame as ``edge-fer eval --detect`` does (upscaled to 160 px, a replicated
border of 25%), so the FER2013 crop's square in the frame is known. The detector runs once per image;
its largest box is compared with that square (side ratio, centre offset) and then cropped as the
runtime crops it (the detector's framing and vertical shift, :meth:`Detector.crop_box`, then each
``--margin``) and classified through the runtime's Classifier; ``--framing`` / ``--shift`` (repeatable)
override the detector's own and give one accuracy row per pair. Use PublicTest to choose (the FER2013
protocol); PrivateTest is for reporting a final choice once.

    python benchmarks/crop_margin.py --model edge_fer/models/default_int8.tflite \\
        --data ../shared/data/fer2013.zip --split PublicTest \\
        --yunet edge_fer/models/face_detection_yunet_2023mar.onnx --json margins.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np

MARGINS = (-0.05, 0.0, 0.025, 0.05, 0.075, 0.1, 0.15)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="bundle (default: the shipped one)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="PublicTest")
    ap.add_argument("--yunet", default=None, help="YuNet .onnx (without it: Haar only)")
    ap.add_argument("--margin", type=float, action="append", default=None, help=f"(default: {MARGINS})")
    ap.add_argument("--detectors", default="haar,yunet", help="comma-separated (yunet needs --yunet)")
    ap.add_argument(
        "--framing",
        type=float,
        action="append",
        default=None,
        help="override each detector's framing (1: raw boxes); repeatable: one accuracy table per value",
    )
    ap.add_argument(
        "--shift",
        type=float,
        action="append",
        default=None,
        help="override each detector's vertical crop shift (share of the crop's side, + = down); repeatable",
    )
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from edge_fer.train.data import load_labeled_images

    from edge_fer.classify import Classifier, default_model_path
    from edge_fer.detect import create_detector
    from edge_fer.evaluate import DetectOptions, _with_context, square_crop
    from edge_fer.preprocess import face_crops, resize

    clf = Classifier.from_file(a.model or default_model_path(), device="cpu", threads=1)
    pre, spec = clf.preprocessing, clf.input_spec
    faces = load_labeled_images(a.data, a.split, None)
    images, labels = faces.images, np.asarray(faces.y)
    if a.limit:
        images, labels = images[: a.limit], labels[: a.limit]
    opts = DetectOptions()
    wanted = a.detectors.split(",")
    detectors = [("haar", {})] if "haar" in wanted else []
    detectors += [("yunet", {"model": a.yunet})] if (a.yunet and "yunet" in wanted) else []
    out: dict = {"model": str(clf.source), "split": a.split, "n": len(images), "bundle_margin": pre.margin}
    for name, kw in detectors:
        det = create_detector(name, scale=opts.scale, min_size=opts.min_size, **kw)
        frames, boxes, ys, geo, aligned = [], [], [], [], []
        for img, y in zip(images, labels):
            frame = _with_context(img, opts.min_side, opts.pad)
            found = det.detect(frame)
            if not found:
                continue
            x0, y0, w, h = max(found, key=lambda f: f.box[2] * f.box[3]).box
            side = opts.min_side * max(img.shape[:2]) / min(img.shape[:2])  # the face square's side in the frame
            c = frame.shape[1] / 2.0, frame.shape[0] / 2.0
            geo.append((max(w, h) / side, w / h, (x0 + w / 2 - c[0]) / side, (y0 + h / 2 - c[1]) / side))
            frames.append(frame)
            aligned.append(resize(square_crop(img), spec.width, spec.height, pre.resize))
            boxes.append((x0, y0, w, h))
            ys.append(int(y))
        g = np.asarray(geo)

        def accuracy(crops: list, ys: list = ys) -> float:
            probs = np.concatenate(
                [clf.predict_raw(clf.prepare_crops(crops[i : i + 64])) for i in range(0, len(crops), 64)]
            )
            return round(float((probs.argmax(1) == np.asarray(ys)).mean()), 4)

        med = np.median(g, axis=0)
        row: dict = {
            "found": len(ys),
            "box_side_over_fer_side": {"median": round(float(med[0]), 4)}
            | {f"p{p}": round(float(np.percentile(g[:, 0], p)), 4) for p in (25, 75)},
            "box_w_over_h": round(float(med[1]), 4),
            "centre_offset": {"dx": round(float(med[2]), 4), "dy": round(float(med[3]), 4)},
            "margin_matching_fer_side": round(float((1.0 / med[0] - 1.0) / 2.0), 4),
            "framing": det.framing,
            "shift": det.shift,
            "accuracy": {},
            "aligned_same_images": accuracy(aligned),  # the dataset's own crops of the images it found
            "by_framing": {},
        }
        print(
            f"{name}: face found in {row['found']}/{len(images)}; box side / FER side {med[0]:.3f}, w/h {med[1]:.3f}, "
            f"centre dx {med[2]:+.3f} dy {med[3]:+.3f}; aligned crops of these images: {row['aligned_same_images']:.2%}"
        )
        own = (det.framing, det.shift)
        for fr in a.framing or [det.framing]:
            for sh in a.shift or [det.shift]:
                det.framing, det.shift = fr, sh
                accs = {}
                for m in a.margin or MARGINS:
                    p = replace(pre, margin=m)
                    crops = [
                        face_crops(f, [det.crop_box(b)], p, spec.width, spec.height)[0] for f, b in zip(frames, boxes)
                    ]
                    accs[f"{m:g}"] = accuracy(crops)
                row["by_framing"][f"{fr:g},{sh:g}"] = accs
                if (fr, sh) == own:
                    row["accuracy"] = accs
                print(
                    f"  framing {fr:g} shift {sh:+g}: " + ", ".join(f"{k}: {v:.2%}" for k, v in accs.items()),
                    flush=True,
                )
        det.framing, det.shift = own
        out[name] = row
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
