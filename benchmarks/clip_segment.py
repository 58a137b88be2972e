"""Cut frames [start, end) of a video into a new file (MPEG-4 Part 2, same size and frame rate; not a test).

    python benchmarks/clip_segment.py --source ../shared/data/video/hamilton_clip.mp4 \\
        --start 90 --end 211 --out runs/clips/hamilton_one_face.mp4

Frames 90-210 of the shared clip are its one-face stretch: the performer at close range, no
audience face found by YuNet at full resolution. Cut out, they make a real one-face clip for speed
comparisons (``benchmarks/compare_fer.py``, ``benchmarks/analyze_vs_fer.py``); ``--repeat 10`` makes a
40-second one (the stretch forwards, backwards, forwards ...), where start-up no longer dominates. The frames are
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
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="write the segment N times, every other time backwards (no cut where it joins): a longer clip",
    )
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
    i, segment = 0, []
    while i < a.end:
        ok, frame = cap.read()
        if not ok:
            break
        if i >= a.start:
            segment.append(frame)
        i += 1
    for r in range(max(1, a.repeat)):
        for frame in segment if r % 2 == 0 else segment[::-1]:
            out.write(frame)
    out.release()
    kept = len(segment)
    times = f", {a.repeat} times ({kept * a.repeat} frames)" if a.repeat > 1 else ""
    print(f"{a.out}: {kept} frames ({a.start}-{a.start + kept - 1}){times}, {size[0]}x{size[1]} at {fps:.2f} fps")
    return 0 if kept else 2


if __name__ == "__main__":
    sys.exit(main())
