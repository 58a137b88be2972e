"""A grid of face-detector settings on the annotated frames of a clip: precision, recall and the
detector's own time per frame (selection data only; the pipeline's end-to-end figures come from
benchmarks/detection_recall.py).

    python benchmarks/detector_grid.py --source ../shared/data/video/hamilton_clip.mp4 \\
        [--truth benchmarks/data/hamilton_faces.json] [--detector yunet] [--json grid.json]

Each setting runs the real detector (``edge_fer.detect.create_detector``, with the window search
between full passes when ``full_every`` >= 1) over every frame in order; boxes on the annotated frames
are scored at IoU >= 0.5 (``benchmarks/detection_scoring.py``; detections inside an ignore region count
neither way). Time: median over ``--loops`` passes of the whole clip, per frame.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

GRID = {
    "yunet": {
        "scale": (0.4, 0.5, 0.6),
        "score_threshold": (0.5, 0.6, 0.7),
        "min_size": (0, 30),
        "full_every": (0, 4, 12),
    },
    "haar": {"scale": (0.5,), "min_size": (30,), "full_every": (0, 12)},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True)
    ap.add_argument("--truth", default=str(Path(__file__).with_name("data") / "hamilton_faces.json"))
    ap.add_argument("--detector", default="yunet", choices=tuple(GRID))
    ap.add_argument("--model", default=None, help="detector model (default: the detector's own)")
    ap.add_argument("--loops", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    from compare_fer import load_frames  # benchmarks/, beside this script
    from detection_scoring import load_ground_truth, score

    from edge_fer.detect import create_detector

    truth = load_ground_truth(a.truth)
    frames, name = load_frames(a.source)
    grid = GRID[a.detector]
    keys = list(grid)
    rows = []
    for values in itertools.product(*(grid[k] for k in keys)):
        opts = dict(zip(keys, values))
        full_every = opts.pop("full_every")
        times, boxes = [], {}
        for loop in range(max(1, a.loops)):
            kw = dict(opts)
            if a.model:
                kw["model"] = a.model
            det = create_detector(a.detector, full_every=full_every, **kw)
            t0 = time.perf_counter()
            for i, img in enumerate(frames):
                found = det.detect(img)
                if loop == 0 and i in truth.frames:
                    boxes[i] = [f.box for f in found]
            times.append((time.perf_counter() - t0) / len(frames))
        s = score(truth, boxes).to_dict()
        row = {**opts, "full_every": full_every, **{k: s[k] for k in ("tp", "fp", "fn", "precision", "recall")}}
        row["ms_per_frame"] = round(1000 * statistics.median(times), 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(
            json.dumps({"source": name, "truth": a.truth, "detector": a.detector, "rows": rows}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
