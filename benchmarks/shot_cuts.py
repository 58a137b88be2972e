"""How often the full-frame pass runs, and whether a new shot brings it forward: recall on the
annotated frames and the detector's own time per frame (selection data only; not a test).

    python benchmarks/shot_cuts.py --source ../shared/data/video/hamilton_clip.mp4 \\
        --one-face runs/clips/hamilton_one_face.mp4 --json benchmarks/results/shot_cuts/grid.json

For each ``full_every`` (4, 6, 8, 12, 16) the real default detector (YuNet through
:class:`edge_fer.detect.roi.RoiDetector`) runs over every frame of the annotated clip, with the new-shot
trigger off (``cut_threshold`` 0) and on (the default, 20): boxes on the annotated frames are scored at
IoU >= 0.5 (``benchmarks/detection_scoring.py``). Time: the detector alone, every setting on the same
frame before the next frame (so all see the same machine), ``--loops`` passes, per frame; on the
annotated clip and on ``--one-face`` (the clip's one-face stretch, ``benchmarks/clip_segment.py``).

``--changes-only``: instead, the change of the detector's own coarse pixel grid from each frame of
``--source`` to the next (what ``cut_threshold`` is compared with): the largest ones with their
frames, and percentiles, to choose the threshold from.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

FULL_EVERY = (4, 6, 8, 12, 16)
CUTS = (0.0, 20.0)


def _time(dets: dict, frames: list, loops: int) -> dict:
    spent = dict.fromkeys(dets, 0.0)
    for _ in range(loops):
        for img in frames:
            for key, det in dets.items():
                t0 = time.perf_counter()
                det.detect(img)
                spent[key] += time.perf_counter() - t0
    return {k: 1000 * v / (loops * len(frames)) for k, v in spent.items()}


def _changes(source: str, json_path: str | None) -> int:
    import numpy as np
    from compare_fer import load_frames  # benchmarks/, beside this script

    from edge_fer.detect import create_detector

    det = create_detector("yunet", full_every=8)
    det.cut_threshold = 1e9  # measured, never triggered
    frames, changes = load_frames(source)[0], []
    for i, img in enumerate(frames):
        prev = det._grid
        det._new_shot(img)
        if prev is not None and prev.shape == det._grid.shape:
            changes.append((i, float(np.abs(det._grid - prev).mean())))
    values = np.array([c for _, c in changes])
    top = sorted(changes, key=lambda fc: -fc[1])[:10]
    doc = {
        "source": source,
        "frames": len(frames),
        "largest": [{"frame": f, "change": round(c, 2)} for f, c in top],
        "percentiles": {str(q): round(float(np.percentile(values, q)), 2) for q in (50, 90, 99)},
    }
    print(json.dumps(doc, indent=1))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="the annotated clip")
    ap.add_argument("--truth", default=str(Path(__file__).with_name("data") / "hamilton_faces.json"))
    ap.add_argument("--one-face", default=None, help="a one-face clip, timed too")
    ap.add_argument("--loops", type=int, default=2)
    ap.add_argument("--changes-only", action="store_true", help="only the grid change from frame to frame")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.changes_only:
        return _changes(a.source, a.json)

    from compare_fer import load_frames  # benchmarks/, beside this script
    from detection_scoring import load_ground_truth, score

    from edge_fer.detect import create_detector

    truth = load_ground_truth(a.truth)
    clips = {"annotated": load_frames(a.source)[0]}
    if a.one_face:
        clips["one_face"] = load_frames(a.one_face)[0]
    settings = [(fe, cut) for fe in FULL_EVERY for cut in CUTS]

    def build(fe: int, cut: float):
        det = create_detector("yunet", full_every=fe)
        det.cut_threshold = cut
        return det

    rows = []
    for fe, cut in settings:
        det, boxes = build(fe, cut), {}
        for i, img in enumerate(clips["annotated"]):
            found = det.detect(img)
            if i in truth.frames:
                boxes[i] = [f.box for f in found]
        s = score(truth, boxes).to_dict()
        rows.append(
            {"full_every": fe, "cut_threshold": cut, "full_passes": det.full_passes}
            | {k: s[k] for k in ("tp", "fp", "fn", "precision", "recall")}
        )
    for name, frames in clips.items():
        ms = _time({(fe, cut): build(fe, cut) for fe, cut in settings}, frames, a.loops)
        for row in rows:
            row[f"{name}_ms_per_frame"] = round(ms[(row["full_every"], row["cut_threshold"])], 3)
    for row in rows:
        print(json.dumps(row))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        doc = {"source": a.source, "one_face": a.one_face, "truth": a.truth, "loops": a.loops, "rows": rows}
        Path(a.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
