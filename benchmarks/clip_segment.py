"""Cut frames [start, end) of a video into a new file (MPEG-4 Part 2, same size and frame rate; not a test).

    python benchmarks/clip_segment.py --source ../shared/data/video/hamilton_clip.mp4 \\
        --start 90 --end 211 --out runs/clips/hamilton_one_face.mp4

Frames 90-210 of the shared clip are its one-face stretch: the performer at close range, no
audience face found by YuNet at full resolution. Cut out, they make a real one-face clip for speed
comparisons (``benchmarks/compare_fer.py``, ``benchmarks/analyze_vs_fer.py``). The frames are
decoded and encoded again with OpenCV's ``mp4v`` writer (no ffmpeg needed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, type=Path)
    ap.add_argument("--start", type=int, required=True, help="first frame kept (0-based)")
    ap.add_argument("--end", type=int, required=True, help="first frame not kept")
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args(argv)

    import cv2

    cap = cv2.VideoCapture(str(a.source))
    if not cap.isOpened():
        print(f"clip_segment: {a.source}: cannot open", file=sys.stderr)
        return 2
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.VideoWriter(str(a.out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    i = kept = 0
    while i < a.end:
        ok, frame = cap.read()
        if not ok:
            break
        if i >= a.start:
            out.write(frame)
            kept += 1
        i += 1
    out.release()
    print(f"{a.out}: {kept} frames ({a.start}-{a.start + kept - 1}), {size[0]}x{size[1]} at {fps:.2f} fps")
    return 0 if kept else 2


if __name__ == "__main__":
    sys.exit(main())
