"""Who is in view now: the last event of each face (track) that has not left, shared by the MQTT
sink (``<topic>/state``) and the HTTP sink (``/latest``), which show it in one shape:
``"tracks": [{"track_id", "label", "confidence", "scores", "box", "ts"}, ...]`` by track id.

Not thread-safe by itself: each sink updates and reads it under its own lock.
"""

from __future__ import annotations

from typing import Any

from edge_fer import jsondoc

FACE_EVENT_TYPES = ("face_appeared", "expression_changed", "face")


class Room:
    def __init__(self) -> None:
        self._tracks: dict[int, dict[str, Any]] = {}

    def update(self, event: dict[str, Any]) -> bool:
        """Record one event (``Event.to_dict()``); True when it concerns a face (the room may have changed)."""
        tid = event.get("track_id")
        if tid is None:
            return False
        if event.get("type") == "face_left":
            self._tracks.pop(tid, None)
        elif event.get("type") in FACE_EVENT_TYPES or event.get("label") is not None:
            self._tracks[tid] = event
        else:
            return False
        return True

    def tracks(self) -> list[dict[str, Any]]:
        """The faces present, by track id: ``{"track_id", "label", "confidence", "scores", "box", "ts"}``
        from each one's last event (``tracks`` of ``/latest`` and of the MQTT state)."""
        return [
            {
                "track_id": t["track_id"],
                "label": t.get("label"),
                "confidence": _confidence(t),
                "scores": dict(t.get("scores") or {}),
                "box": t.get("box"),
                "ts": t.get("ts"),
            }
            for _, t in sorted(self._tracks.items())
        ]

    def state(self, ts: float) -> dict[str, Any]:
        """The MQTT state document (``edge-fer-state/1``): ``{"ts", "faces", "label", "confidence",
        "scores", "tracks"}``; ``label``/``confidence``/``scores`` are those of the largest face (the
        oldest track on ties), ``"none"``, None and ``{}`` when nobody is there."""
        main = max((t for _, t in sorted(self._tracks.items())), key=_area, default=None)
        tracks = self.tracks()
        return jsondoc.document(
            "state",
            {
                "ts": round(ts, 6),
                "faces": len(tracks),
                "label": main.get("label", "none") if main else "none",
                "confidence": _confidence(main) if main else None,
                "scores": dict(main.get("scores") or {}) if main else {},
                "tracks": tracks,
            },
        )


def _area(event: dict[str, Any]) -> float:
    b = event.get("box")
    return float(b[2]) * float(b[3]) if b and len(b) == 4 else 0.0


def _confidence(event: dict[str, Any]) -> float | None:
    scores = event.get("scores") or {}
    return round(float(scores[event["label"]]), 4) if event.get("label") in scores else None
