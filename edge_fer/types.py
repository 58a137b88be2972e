"""Typed values passed between the runtime's stages (no dicts of dicts at the boundaries)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(slots=True)
class Frame:
    """One captured frame. ``image`` is BGR uint8 (H, W, 3) or grayscale (H, W)."""

    image: np.ndarray
    index: int
    ts: float  # wall-clock capture time, seconds since the epoch
    source_ts: float | None = None  # the source's own timestamp (sensor time, video position), seconds
    gray: np.ndarray | None = None  # grayscale view when the source already has one (picamera2 Y plane)


@dataclass(frozen=True, slots=True)
class Face:
    """A detected face: ``box`` is (x, y, w, h) in frame pixels."""

    box: tuple[int, int, int, int]
    score: float = 1.0
    landmarks: np.ndarray | None = None  # (5, 2) for YuNet, None for Haar


@dataclass(frozen=True, slots=True)
class Prediction:
    """Class probabilities for one face, in the bundle's label order."""

    scores: np.ndarray  # float32 (num_classes,)
    labels: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.labels[int(np.argmax(self.scores))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.scores))

    def as_dict(self) -> dict[str, float]:
        return {name: round(float(p), 4) for name, p in zip(self.labels, self.scores)}


@dataclass(slots=True)
class Event:
    """Something worth telling the outside world. ``to_dict`` is what every sink writes.

    Every event has ``type`` and ``ts``; face events (``face_appeared``, ``expression_changed``,
    ``face_left``, ``face``) also carry ``track_id``, ``label`` and ``scores`` (label -> probability).
    """

    type: str
    ts: float
    frame: int | None = None
    track_id: int | None = None
    label: str | None = None
    scores: dict[str, float] | None = None
    box: tuple[int, int, int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "ts": round(self.ts, 6)}
        if self.frame is not None:
            d["frame"] = self.frame
        if self.track_id is not None:
            d["track_id"] = self.track_id
        if self.label is not None:
            d["label"] = self.label
        if self.scores is not None:
            d["scores"] = self.scores
        if self.box is not None:
            d["box"] = list(self.box)
        d.update(self.extra)
        return d


@runtime_checkable
class Sink(Protocol):
    """Where events go. ``emit`` must not raise for transport failures: a sink that cannot
    deliver retries with back-off and counts what it drops. A sink that can never deliver again
    (a full disk, a closed pipe) may set a ``failed`` attribute to the reason: the runtime then ends
    the run with an error (``Pipeline.check_outcome``)."""

    name: str

    def emit(self, event: Event) -> None: ...

    def flush(self) -> None:
        """Called after every frame that has events: hand buffered output on (a file write), but
        never wait on the network; acknowledgement waits belong to ``close`` (bounded)."""
        ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, int]:
        """Counters such as {"sent": n, "dropped": n, "errors": n}."""
        ...
