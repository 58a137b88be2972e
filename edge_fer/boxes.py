"""Box geometry shared by the tracker, the window search and the detection benchmark."""

from __future__ import annotations

from collections.abc import Sequence


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (extra items ignored); 0 when they do
    not overlap or one is empty."""
    ax, ay, aw, ah = (float(v) for v in a[:4])
    bx, by, bw, bh = (float(v) for v in b[:4])
    ix = min(ax + aw, bx + bw) - max(ax, bx)
    iy = min(ay + ah, by + bh) - max(ay, by)
    if ix <= 0 or iy <= 0 or aw <= 0 or ah <= 0 or bw <= 0 or bh <= 0:
        return 0.0
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)
