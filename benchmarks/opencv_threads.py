"""YuNet's two passes with OpenCV on one thread and on all cores (not a test).

    python benchmarks/opencv_threads.py --source runs/clips/hamilton_one_face.mp4 \
        --json benchmarks/results/opencv_threads/yunet_threads.json

The window search (edge_fer/detect/roi.py) runs a 64 x 64 copy of YuNet around each known face, the
full pass runs it on the frame at half size. OpenCV spreads each network over its thread pool; for a
64 x 64 input the hand-off can cost more than the work. This times both passes, in turn, with
``cv2.setNumThreads(1)`` and with the machine's default, on the same frames (median of ``--rounds``
rounds, each the mean over the frames), and the cost of switching the count around every window, as
the window search does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import cv2
import numpy as np

from edge_fer import jsondoc
from edge_fer.bench.compare_fer import load_frames
from edge_fer.bench.machine import machine_info
from edge_fer.detect.yunet import shrink
from edge_fer.models import shipped_yunet


def _mean_ms(net: cv2.FaceDetectorYN, images: list[np.ndarray], threads: int, toggle: bool = False) -> float:
    default = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        for im in images[:5]:
            net.detect(im)
        t = time.perf_counter()
        for im in images:
            if toggle:
                cv2.setNumThreads(1)
                net.detect(im)
                cv2.setNumThreads(threads)
            else:
                net.detect(im)
        return (time.perf_counter() - t) / len(images) * 1000.0
    finally:
        cv2.setNumThreads(default)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", required=True, help="a video; its first --frames frames are used")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)

    frames, _ = load_frames(args.source, max_frames=args.frames)
    model = str(shipped_yunet())
    default = cv2.getNumThreads()
    h, w = frames[0].shape[:2]
    full_size = (w // 2, h // 2)
    full_net = cv2.FaceDetectorYN.create(model, "", full_size, 0.6, 0.3, 50)
    window_net = cv2.FaceDetectorYN.create(model, "", (64, 64), 0.6, 0.3, 50)
    side = min(h, w) * 2 // 3  # a window around the middle of the frame, as large as a near face's
    y0, x0 = (h - side) // 2, (w - side) // 2
    full_in = [cv2.resize(f, full_size, interpolation=cv2.INTER_AREA) for f in frames]
    window_in = [shrink(f[y0 : y0 + side, x0 : x0 + side], 64, 64) for f in frames]
    runs: dict[str, list[float]] = {
        k: []
        for k in (
            "window_1_thread",
            f"window_{default}_threads",
            "window_toggled",
            "full_1_thread",
            f"full_{default}_threads",
        )
    }
    for _ in range(args.rounds):  # in turn, so a slow period of the machine hits every variant
        runs["window_1_thread"].append(_mean_ms(window_net, window_in, 1))
        runs[f"window_{default}_threads"].append(_mean_ms(window_net, window_in, default))
        runs["window_toggled"].append(_mean_ms(window_net, window_in, default, toggle=True))
        runs["full_1_thread"].append(_mean_ms(full_net, full_in, 1))
        runs[f"full_{default}_threads"].append(_mean_ms(full_net, full_in, default))
    doc = {
        "command": "benchmarks/opencv_threads.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "source": args.source,
        "frames": len(frames),
        "frame_size": [w, h],
        "full_pass_input": list(full_size),
        "window_input": [64, 64],
        "opencv_default_threads": default,
        "median_ms": {k: round(statistics.median(v), 4) for k, v in runs.items()},
        "rounds_ms": {k: [round(x, 4) for x in v] for k, v in runs.items()},
        "machine": machine_info(),
    }
    for k, v in doc["median_ms"].items():
        print(f"{k:<22} {v:7.3f} ms")
    jsondoc.write(args.json, doc, indent=1, mkdir=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
