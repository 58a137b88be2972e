"""Face-detection precision/recall against hand-annotated boxes, and end-to-end frames/s, per
configuration of the real pipeline, side by side with the `fer` package when it is importable.

    python benchmarks/detection_recall.py --source ../shared/data/video/hamilton_clip.mp4 \
        --truth benchmarks/data/hamilton_faces.json [--yunet-model FILE.onnx] [--loops 3] [--json out.json]

Every configuration is the real ``edge-fer run`` pipeline (``Pipeline.from_config``, detection to
the sink, events to os.devnull) fed the same decoded frames; ``fer`` is ``FER().detect_emotions``
(its default: Haar on the full frame, scaleFactor 1.1, minNeighbors 5, min face 50 px, + its TFLite
model). All of them process frame i before any processes frame i+1, in an order that rotates every
frame, so load from other processes falls on all of them alike. Decoding is done once, not timed.

Recall and precision (``benchmarks/detection_scoring.py``): the boxes each pipeline hands to its classifier
on the annotated frames of the first pass (for ``--detect-every N`` those include the boxes the
tracker carries between detections: they are what gets classified), matched one-to-one to the
annotated faces at IoU >= 0.5; detections inside an annotated ignore region count neither way.

YuNet configurations use the model shipped in the package unless ``--yunet-model`` names another. ``fer`` lives in
its own venv (see edge_fer/bench/compare_fer.py):
run this script with that venv's python and ``PYTHONPATH=<this checkout>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HAAR = {"detector.name": "haar", "detector.min_size": 30}  # the Haar defaults before YuNet
# the Haar settings edge-fer used before: frontalface_default cascade, scaleFactor 1.2, minNeighbors 5
OLD_HAAR = {"model": "haarcascade_frontalface_default.xml", "scale_factor": 1.2, "min_neighbors": 5}
# (name, config overrides on top of edge_fer.config's defaults, extra detector constructor options)
CONFIGS: list[tuple[str, dict, dict]] = [
    ("default", {}, {}),
    (
        "haar 0.5, ROI, full pass every 12 (the default before YuNet)",
        {**HAAR, "detector.scale": 0.5, "detector.full_every": 12},
        {},
    ),
    (
        "haar 0.5, full frame each frame (old default: frontalface_default, sf 1.2, mn 5)",
        {**HAAR, "detector.scale": 0.5, "detector.full_every": 0},
        OLD_HAAR,
    ),
    ("haar 0.5, full frame each frame", {**HAAR, "detector.scale": 0.5, "detector.full_every": 0}, {}),
    ("haar 1.0, full frame each frame", {**HAAR, "detector.scale": 1.0, "detector.full_every": 0}, {}),
    (
        "haar 0.5, every 3rd frame + tracker",
        {**HAAR, "detector.scale": 0.5, "detector.full_every": 0, "detector.every": 3},
        {},
    ),
    (
        "haar 0.5, ROI without the profile cascade, full pass every 12",
        {**HAAR, "detector.scale": 0.5, "detector.full_every": 12},
        {"roi_profile": False},
    ),
    ("haar 0.5, ROI, full pass every 24", {**HAAR, "detector.scale": 0.5, "detector.full_every": 24}, {}),
]
YUNET = {"detector.name": "yunet"}
# the shipped YuNet model unless --yunet-model names another
YUNET_CONFIGS: list[tuple[str, dict, dict]] = [
    ("yunet 0.5, full frame each frame", {**YUNET, "detector.scale": 0.5, "detector.full_every": 0}, {}),
    ("yunet 0.5, ROI, full pass every 4", {**YUNET, "detector.scale": 0.5, "detector.full_every": 4}, {}),
    ("yunet 0.5, ROI, full pass every 12", {**YUNET, "detector.scale": 0.5, "detector.full_every": 12}, {}),
    (
        "yunet 0.5, every 2nd frame + tracker",
        {**YUNET, "detector.scale": 0.5, "detector.full_every": 0, "detector.every": 2},
        {},
    ),
    (
        "yunet 0.5, every 2nd frame + tracker, ROI, full pass every 4",
        {**YUNET, "detector.scale": 0.5, "detector.full_every": 4, "detector.every": 2},
        {},
    ),
    (
        "yunet 0.5, every 2nd frame + tracker, ROI, full pass every 6",
        {**YUNET, "detector.scale": 0.5, "detector.full_every": 6, "detector.every": 2},
        {},
    ),
    (
        "yunet 0.4 (min input 256), ROI, full pass every 4",
        {**YUNET, "detector.scale": 0.4, "detector.full_every": 4},
        {"min_input": 256},
    ),
    (
        "yunet 0.4 (min input 256), every 2nd frame + tracker, ROI, full pass every 4",
        {**YUNET, "detector.scale": 0.4, "detector.full_every": 4, "detector.every": 2},
        {"min_input": 256},
    ),
    (
        "yunet 0.5, every 3rd frame + tracker",
        {**YUNET, "detector.scale": 0.5, "detector.full_every": 0, "detector.every": 3},
        {},
    ),
    (
        "yunet 0.5, score 0.7, full frame each frame",
        {**YUNET, "detector.scale": 0.5, "detector.full_every": 0, "detector.score_threshold": 0.7},
        {},
    ),
]


class _Spy:
    """Wraps a classifier; records the boxes of each ``prepare`` call (one per frame)."""

    def __init__(self, inner):
        self._inner = inner
        self.last_boxes: list = []

    def prepare(self, gray, boxes):
        self.last_boxes = [tuple(int(v) for v in b) for b in boxes]
        return self._inner.prepare(gray, boxes)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def describe_default() -> str:
    from edge_fer.config import Config

    d = Config().detector
    mode = f"ROI, full pass every {d.full_every}" if d.full_every else "full frame each frame"
    every = f", every {d.every}" if d.every > 1 else ""
    return f"{d.name} {d.scale:g}, {mode}{every}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--source", required=True, help="the annotated video")
    ap.add_argument("--truth", default=str(Path(__file__).with_name("data") / "hamilton_faces.json"))
    ap.add_argument("--model", help="edge-fer model bundle (default: the shipped one)")
    ap.add_argument("--yunet-model", help="YuNet .onnx for the yunet configurations (default: the shipped one)")
    ap.add_argument(
        "--only", action="append", default=[], help="run the configurations whose name contains this (repeatable)"
    )
    ap.add_argument("--no-fer", action="store_true", help="leave the fer peer out even when importable")
    ap.add_argument("--loops", type=int, default=3, help="play the video N times for the timing (recall: first pass)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed frames at the start")
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from compare_fer import load_frames  # benchmarks/, beside this script
    from detection_scoring import load_ground_truth, score  # benchmarks/, beside this script

    from edge_fer import config as cfgmod
    from edge_fer.bench.machine import loadavg as _loadavg
    from edge_fer.bench.machine import machine_info
    from edge_fer.doctor import dist_version as _dist_version
    from edge_fer.errors import EdgeFerError
    from edge_fer.pipeline import Pipeline
    from edge_fer.types import Frame

    try:
        truth = load_ground_truth(args.truth)
        frames, name = load_frames(args.source)
        yunet = args.yunet_model or ""  # "": the detector's own (shipped, or pulled)
        configs = [(describe_default() + " [default]" if n == "default" else n, o, k) for n, o, k in CONFIGS]
        configs += [(n, {**o, "detector.model": yunet}, k) for n, o, k in YUNET_CONFIGS]
        if args.only:
            configs = [c for c in configs if any(s in c[0] for s in args.only)]
        runners = []
        for label, over, kw in configs:
            cfg = cfgmod.build(
                None, {"source.uri": args.source, "model.path": args.model, "output.path": os.devnull, **over}
            )
            pipe = Pipeline.from_config(cfg)
            if kw:  # constructor options that are not config keys: rebuild the detector with them
                import cv2

                from edge_fer.detect import create_detector

                d = cfg.detector
                kw = dict(kw)
                if kw.get("model") and not os.path.isabs(kw["model"]):
                    kw["model"] = os.path.join(cv2.data.haarcascades, kw["model"])
                pipe.detector = create_detector(
                    d.name,
                    scale=d.scale,
                    min_size=d.min_size,
                    score_threshold=d.score_threshold,
                    full_every=d.full_every,
                    frame_gap=d.every,
                    **({"model": d.model or None} | kw),
                )
            spy = _Spy(pipe.classifier)
            pipe.classifier = spy
            runners.append(
                {
                    "name": label,
                    "pipe": pipe,
                    "spy": spy,
                    "cfg": cfg.to_dict()["detector"],
                    "times": [],
                    "boxes": {},
                    "faces": 0,
                }
            )
    except EdgeFerError as e:
        print(f"detection_recall: error: {e}", file=sys.stderr)
        return 2

    fer = None
    if not args.no_fer:
        try:
            from fer.fer import FER

            fer = {
                "name": f"fer {_dist_version('fer')} default (Haar 1.0, scaleFactor 1.1, min face 50)",
                "obj": FER(),
                "times": [],
                "boxes": {},
                "faces": 0,
            }
        except Exception as e:  # not installed here: reported, not fatal
            print(f"detection_recall: fer not measured ({type(e).__name__}: {e})", file=sys.stderr)

    everyone = runners + ([fer] if fer else [])
    load0 = _loadavg()
    pc, cpu = time.perf_counter, time.process_time
    n = len(frames)
    for r in everyone:
        r["cpu"] = []
    for loop in range(max(1, args.loops)):
        for i, img in enumerate(frames):
            k = loop * n + i
            order = everyone[k % len(everyone) :] + everyone[: k % len(everyone)]
            for r in order:
                if r is fer:
                    t, c = pc(), cpu()
                    res = fer["obj"].detect_emotions(img)
                    dt, dc = pc() - t, cpu() - c
                    boxes = [tuple(int(v) for v in e["box"]) for e in res]
                else:
                    t, c = pc(), cpu()
                    r["pipe"].process(Frame(img, k, time.time(), None))
                    dt, dc = pc() - t, cpu() - c
                    boxes = r["spy"].last_boxes
                if k >= args.warmup:
                    r["times"].append(dt)
                    r["cpu"].append(dc)
                if loop == 0:
                    r["faces"] += len(boxes)
                    if i in truth.frames:
                        r["boxes"][i] = boxes
    for r in runners:
        r["pipe"].close()

    fer_fps = (len(fer["times"]) / sum(fer["times"])) if fer else None
    fer_cpu_fps = (len(fer["cpu"]) / max(sum(fer["cpu"]), 1e-9)) if fer else None
    rows = []
    for r in everyone:
        s = score(truth, r["boxes"], iou_threshold=args.iou)
        fps = len(r["times"]) / sum(r["times"])
        cpu_fps = len(r["cpu"]) / max(sum(r["cpu"]), 1e-9)
        rows.append(
            {
                "config": r["name"],
                **s.to_dict(),
                "fps": round(fps, 1),
                "ms_per_frame": round(1000 / fps, 3),
                "x_fer": round(fps / fer_fps, 2) if fer_fps else None,
                "cpu_ms_per_frame": round(1000 / cpu_fps, 3),
                "cpu_fps": round(cpu_fps, 1),
                "x_fer_cpu": round(cpu_fps / fer_cpu_fps, 2) if fer_cpu_fps else None,
                "faces_first_pass": r["faces"],
                "peer": r is fer,
                "detector": None if r is fer else r["cfg"],
            }
        )
    rep = {
        "schema": "edge-fer-detection-recall/1",
        "source": name,
        "loadavg_start": load0,
        "loadavg_end": _loadavg(),
        "truth": args.truth,
        "annotated_frames": len(truth.frames),
        "annotated_faces": truth.num_faces,
        "iou_threshold": args.iou,
        "frames_per_pass": n,
        "loops": args.loops,
        "timed_frames": len(runners[0]["times"]) if runners else 0,
        "fer_fps": round(fer_fps, 1) if fer_fps else None,
        "rows": rows,
        "machine": machine_info(runners[0]["pipe"].classifier._inner if runners else None),
        "boxes": {r["name"]: {str(k): v for k, v in sorted(r["boxes"].items())} for r in everyone},
    }
    print(
        f"{name}: {n} frames x {args.loops}; {len(truth.frames)} annotated frames, {truth.num_faces} faces; IoU >= {args.iou}"
    )
    print(
        "| configuration | TP | FP | FN | ignored | precision | recall | frames/s (wall) | x fer | CPU ms/frame | x fer (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        xf = f"{row['x_fer']:.2f}x" if row["x_fer"] else "-"
        xc = f"{row['x_fer_cpu']:.2f}x" if row["x_fer_cpu"] else "-"
        print(
            f"| {row['config']} | {row['tp']} | {row['fp']} | {row['fn']} | {row['ignored']} | {row['precision']:.3f} | "
            f"{row['recall']:.3f} | {row['fps']:.1f} | {xf} | {row['cpu_ms_per_frame']:.2f} | {xc} |"
        )
    if not fer:
        print("fer: not measured (not importable here)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rep, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
