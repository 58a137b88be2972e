"""Which stable label each face (track) held, and when: the live page's timeline.

Built from the events alone (``face_appeared`` opens a segment, ``expression_changed`` closes it and
opens the next, ``face_left`` closes it), so it shows exactly what the event consumers were told.
Segments that ended more than ``window_s`` ago are forgotten, and at most ``max_segments`` are kept:
memory stays bounded whatever the scene. Not thread-safe by itself: the HTTP sink uses it under its lock.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class Timeline:
    def __init__(self, window_s: float = 300.0, max_segments: int = 2000) -> None:
        self.window_s = float(window_s)
        self._done: deque[dict[str, Any]] = deque(maxlen=max(1, int(max_segments)))
        self._open: dict[int, dict[str, Any]] = {}  # track id -> its current segment

    def update(self, event: dict[str, Any]) -> None:
        """Record one event (``Event.to_dict()``); events without a track id are ignored."""
        tid, kind, ts = event.get("track_id"), event.get("type"), event.get("ts")
        if tid is None or ts is None:
            return
        if kind == "face_appeared" or (kind == "expression_changed" and tid not in self._open):
            self._start(tid, event)
        elif kind == "expression_changed":
            self._close(tid, ts)
            self._start(tid, event)
        elif kind == "face_left":
            self._close(tid, ts)

    def _start(self, tid: int, event: dict[str, Any]) -> None:
        self._open[tid] = {"track_id": tid, "label": event.get("label"), "start": event["ts"], "end": None}

    def _close(self, tid: int, ts: float) -> None:
        seg = self._open.pop(tid, None)
        if seg is not None:
            seg["end"] = ts
            self._done.append(seg)

    def segments(self, now: float) -> list[dict[str, Any]]:
        """The segments of the last ``window_s`` seconds, oldest first (``end`` None: still going)."""
        cut = now - self.window_s
        while self._done and self._done[0]["end"] < cut:
            self._done.popleft()
        out = [dict(s) for s in self._done if s["end"] >= cut]
        out += [dict(s) for s in sorted(self._open.values(), key=lambda s: s["start"])]
        return out
