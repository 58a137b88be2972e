"""A one-face test clip made from a still photo: the camera pans and zooms around the face (not a test).

    python benchmarks/still_pan_clip.py --image ../shared/data/images/obama.jpg --out oneface.mp4
    python benchmarks/compare_fer.py --source oneface.mp4 --model edge_fer/models/default_int8.tflite

The project has one real clip, and it is a crowded one: a performer plus audience faces, 2.4 faces a
frame for edge-fer's detector. Per-frame cost grows with the faces found, so that clip is the worst
case for edge-fer's frames/s against `fer`. This clip is the other end: exactly one face in every
frame, 640x360 at 30 fps, 300 frames. The frame window is 1.5 to 4.5 face widths wide (so the face
is 140-430 px wide) and drifts around the face on two sine paths; edges are replicated, not black.
It is synthetic (no motion blur, no new pose), so it is for speed, not for recall.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", required=True, type=Path, help="a photo with one face")
    ap.add_argument("--out", required=True, type=Path, help="the .mp4 to write")
    ap.add_argument("--frames", type=int, default=300)
    a = ap.parse_args(argv)

    import cv2

    from edge_fer.detect.yunet import YuNetDetector

    im = cv2.imread(str(a.image))
    if im is None:
        print(f"still_pan_clip: {a.image}: not a readable image", file=sys.stderr)
        return 2
    faces = YuNetDetector(scale=1.0).detect(im)
    if len(faces) != 1:
        print(f"still_pan_clip: {a.image}: {len(faces)} faces found, need exactly one", file=sys.stderr)
        return 2
    x, y, w, h = faces[0].box
    pad = 2 * max(im.shape[:2])
    canvas = cv2.copyMakeBorder(im, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    cx, cy = x + w / 2 + pad, y + h / 2 + pad
    a.out.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.VideoWriter(str(a.out), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 360))
    for i in range(a.frames):
        t = i / a.frames
        span = w * (3.0 + 1.5 * np.sin(2 * np.pi * t))
        x0 = int(cx + 0.4 * w * np.sin(4 * np.pi * t) - span / 2)
        y0 = int(cy + 0.2 * h * np.cos(2 * np.pi * t) - span * 9 / 32)
        window = canvas[y0 : y0 + int(span * 9 / 16), x0 : x0 + int(span)]
        out.write(cv2.resize(window, (640, 360), interpolation=cv2.INTER_AREA))
    out.release()
    print(f"{a.out}: {a.frames} frames, 640x360, one face {w}x{h} px in the photo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
