"""Line charts drawn with OpenCV: ``edge-fer analyze``'s ``emotions.png`` on a device that has no
matplotlib, in milliseconds (on a desktop CPU matplotlib's import took about 0.9 s in each worker and
its drawing about 0.6 s per video: docs/video-analysis.md).

One chart: stacked panels sharing a time axis, each a set of series in [0, 1] (NaN breaks a line),
a legend across the top, ticks at 1-2-5 steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

# matplotlib's "tab10" colours, as BGR: the plot looks as it did when matplotlib drew it
PALETTE = [
    (180, 119, 31),
    (14, 127, 255),
    (44, 160, 44),
    (40, 39, 214),
    (189, 103, 148),
    (75, 86, 140),
    (194, 119, 227),
]
PALETTE += [(127, 127, 127), (34, 189, 188), (207, 190, 23)]
FONT = cv2.FONT_HERSHEY_SIMPLEX
INK = (40, 40, 40)
GRID = (225, 225, 225)

WIDTH = 1000
PANEL = 200  # panel height in pixels
LEFT, RIGHT, TOP, BOTTOM, GAP = 86, 20, 44, 56, 12


def nice_ticks(span: float, target: int = 8) -> np.ndarray:
    """Tick positions in [0, span] at a 1, 2 or 5 x 10^k step giving about ``target`` ticks."""
    span = max(float(span), 1e-9)
    raw = span / max(target, 1)
    base = 10.0 ** math.floor(math.log10(raw))
    step = next((m * base for m in (1, 2, 5, 10) if m * base >= raw), 10 * base)
    return np.arange(0.0, span + step * 1e-6, step)


def _tick_text(v: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{v:.{decimals}f}"


def _text(img: np.ndarray, s: str, x: int, y: int, scale: float = 0.45, anchor: str = "left") -> None:
    """Text with its baseline at ``y``; ``anchor`` left, centre or right of ``x``."""
    (w, _), _ = cv2.getTextSize(s, FONT, scale, 1)
    x = x - w // 2 if anchor == "centre" else x - w if anchor == "right" else x
    cv2.putText(img, s, (int(x), int(y)), FONT, scale, INK, 1, cv2.LINE_AA)


def _vertical_text(img: np.ndarray, s: str, cx: int, cy: int, scale: float = 0.5) -> None:
    """Text turned 90 degrees anticlockwise, centred on (cx, cy)."""
    (w, h), base = cv2.getTextSize(s, FONT, scale, 1)
    tile = np.full((h + base + 4, w + 4, 3), 255, np.uint8)
    cv2.putText(tile, s, (2, h + 2), FONT, scale, INK, 1, cv2.LINE_AA)
    tile = np.ascontiguousarray(np.rot90(tile))
    th, tw = tile.shape[:2]
    y0, x0 = max(0, cy - th // 2), max(0, cx - tw // 2)
    region = img[y0 : y0 + th, x0 : x0 + tw]
    region[...] = np.minimum(region, tile[: region.shape[0], : region.shape[1]])


def _segments(xs: np.ndarray, ys: np.ndarray, bridge: int = 0) -> list[np.ndarray]:
    """Runs of finite points as int32 polylines; a gap of more than ``bridge`` NaNs ends a run."""
    idx = np.flatnonzero(np.isfinite(ys))
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > bridge + 1) + 1
    return [np.stack([xs[run], ys[run]], 1).round().astype(np.int32) for run in np.split(idx, breaks)]


def line_chart(
    x: np.ndarray,
    panels: Sequence[np.ndarray],
    titles: Sequence[str],
    series: Sequence[str],
    x_max: float,
    x_label: str,
    empty_text: str = "no data",
    bridge: int = 0,
) -> bytes:
    """A PNG: one panel per (len(x), len(series)) array of values in [0, 1] (NaN: no value; a line
    goes on across up to ``bridge`` of them), each titled at its left, sharing the x axis [0, ``x_max``].
    A point with no neighbour is drawn as a dot."""
    n = max(1, len(panels))
    height = TOP + n * PANEL + (n - 1) * GAP + BOTTOM
    img = np.full((height, WIDTH, 3), 255, np.uint8)
    x0, x1 = LEFT, WIDTH - RIGHT
    span = max(float(x_max), 1e-9)
    ticks = nice_ticks(span)
    step = float(ticks[1] - ticks[0]) if len(ticks) > 1 else span
    px = x0 + np.asarray(x, np.float64) / span * (x1 - x0)
    for k in range(n):
        top = TOP + k * (PANEL + GAP)
        bottom = top + PANEL
        for t in ticks:
            gx = int(round(x0 + t / span * (x1 - x0)))
            cv2.line(img, (gx, top), (gx, bottom), GRID, 1)
        for v in (0.0, 0.25, 0.5, 0.75, 1.0):
            gy = int(round(bottom - v * PANEL))
            cv2.line(img, (x0, gy), (x1, gy), GRID, 1)
            _text(img, f"{v:g}", x0 - 6, gy + 5, 0.4, "right")
        if k < len(panels):
            values = np.asarray(panels[k], np.float64)
            for j in range(values.shape[1]):
                py = bottom - np.clip(values[:, j], 0.0, 1.0) * PANEL
                py[~np.isfinite(values[:, j])] = np.nan
                colour = PALETTE[j % len(PALETTE)]
                for seg in _segments(px, py, bridge):
                    if len(seg) == 1:
                        cv2.circle(img, (int(seg[0, 0]), int(seg[0, 1])), 2, colour, -1, cv2.LINE_AA)
                    else:
                        cv2.polylines(img, [seg], False, colour, 2, cv2.LINE_AA)
            _vertical_text(img, titles[k], 22, (top + bottom) // 2)
        else:
            _text(img, empty_text, (x0 + x1) // 2, (top + bottom) // 2, 0.6, "centre")
        cv2.rectangle(img, (x0, top), (x1, bottom), INK, 1)
    last = TOP + (n - 1) * (PANEL + GAP) + PANEL
    for t in ticks:
        gx = int(round(x0 + t / span * (x1 - x0)))
        cv2.line(img, (gx, last), (gx, last + 5), INK, 1)
        _text(img, _tick_text(float(t), step), gx, last + 22, 0.42, "centre")
    _text(img, x_label, (x0 + x1) // 2, height - 10, 0.5, "centre")
    # legend: a short line and the name of each series, centred across the top
    items = [(name, cv2.getTextSize(name, FONT, 0.45, 1)[0][0] + 38) for name in series]
    lx = (WIDTH - sum(w for _, w in items)) // 2
    for j, (name, w) in enumerate(items):
        cv2.line(img, (lx, TOP // 2), (lx + 24, TOP // 2), PALETTE[j % len(PALETTE)], 2, cv2.LINE_AA)
        _text(img, name, lx + 30, TOP // 2 + 5)
        lx += w
    ok, png = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR image
        raise RuntimeError("cv2.imencode failed to write a PNG")
    return png.tobytes()
