"""Typed values passed between the runtime's stages (no dicts of dicts at the boundaries)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from edge_fer import __version__


@dataclass(slots=True)
class Frame:
    """One captured frame. ``image`` is BGR uint8 (H, W, 3) or grayscale (H, W)."""

    image: np.ndarray
    index: int
    ts: float  # wall-clock capture time, seconds since the epoch
    source_ts: float | None = None  # the source's own timestamp (sensor time, video position), seconds
    gray: np.ndarray | None = None  # grayscale view when the source already has one (picamera2 Y plane)
    # a video file's position of this frame (seconds, from its presentation timestamp); None when live
    media_time: float | None = None


@dataclass(frozen=True, slots=True)
class Face:
    """A detected face: ``box`` is (x, y, w, h) in frame pixels."""

    box: tuple[int, int, int, int]
    score: float = 1.0
    landmarks: np.ndarray | None = None  # (5, 2) for YuNet, None for Haar


def int_box(box: Sequence[Any]) -> tuple[int, int, int, int]:
    """An (x, y, w, h) box as plain ints (a detector may hand numpy integers or floats)."""
    x, y, w, h = box
    return int(x), int(y), int(w), int(h)


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


# every event's head (a JSONL line has no room for edge_fer.jsondoc's ``created``: ``ts`` is the time)
EVENT_SCHEMA = "edge-fer-event/1"
# the keys an event may carry besides the fixed fields: face events' confidence (``face``), previous
# label (``expression_changed``), duration, frame count and media span (``face_left``), the quality gate's
# reconstruction error and verdict, the image file of a still source
EVENT_EXTRA_KEYS = (
    "confidence",
    "previous",
    "duration_s",
    "frames",
    "media_start_s",
    "media_end_s",
    "recon_error",
    "low_quality",
    "image",
)


@dataclass(slots=True)
class Event:
    """Something worth telling the outside world. ``to_dict`` is what every sink writes.

    Every event has ``schema`` (``edge-fer-event/1``), the edge-fer ``version``, ``type`` and ``ts``
    (wall-clock seconds since the epoch, when it was made); face events (``face_appeared``,
    ``expression_changed``, ``face_left``, ``face``) also carry ``track_id``, ``label`` and ``scores``
    (label -> probability), and the ``extra`` keys of :data:`EVENT_EXTRA_KEYS` where they apply.
    Events from a video file also carry ``media_time_s``: the position in the video (seconds, from
    the frame's presentation timestamp); live sources have none.
    """

    type: str
    ts: float
    frame: int | None = None
    track_id: int | None = None
    label: str | None = None
    scores: dict[str, float] | None = None
    box: tuple[int, int, int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    media_time_s: float | None = None  # position in a video file (seconds); None for live sources

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schema": EVENT_SCHEMA, "version": __version__, "type": self.type, "ts": round(self.ts, 6)}
        if self.frame is not None:
            d["frame"] = self.frame
        if self.media_time_s is not None:
            d["media_time_s"] = round(self.media_time_s, 6)
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


StatusProvider = Callable[[], Any]
"""Returns the runtime's status (``Pipeline.status()``): a mapping, or an object with ``to_dict()``."""


def status_dict(status: Any) -> Mapping[str, Any] | None:
    """What a :data:`StatusProvider` returned, as a mapping (None when it is neither kind)."""
    if isinstance(status, Mapping):
        return status
    to_dict = getattr(status, "to_dict", None)
    return to_dict() if callable(to_dict) else None


@dataclass
class SinkStats:
    """A sink's counters; ``to_dict`` is the JSON (MQTT ``<topic>/stats``, ``/metrics``). A counter
    that is None is one the sink does not have (``queued`` for a sink without a queue) and is left
    out of the JSON. Sinks with more counters subclass this."""

    sent: int = 0  # events delivered
    dropped: int = 0  # events lost (a full queue, gave up)
    errors: int = 0  # transport errors
    queued: int | None = None  # events waiting for delivery

    def to_dict(self) -> dict[str, int]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


class Sink(ABC):
    """Where events go. Subclass it: the runtime calls every method below without probing.

    ``emit`` must not raise for transport failures: a sink that cannot deliver retries with back-off
    and counts what it drops. A sink that can never deliver again (a full disk, a closed pipe) sets
    :attr:`failed` to the reason: the runtime then ends the run with an error
    (``Pipeline.check_outcome``)."""

    #: the sink's name in logs and in ``/metrics`` (``sink="..."``)
    name: str = "sink"
    #: why the sink gave up for good; None while it can deliver
    failed: str | None = None

    @abstractmethod
    def emit(self, event: Event) -> None: ...

    def flush(self) -> None:
        """Called after every frame that has events: hand buffered output on (a file write), but
        never wait on the network; acknowledgement waits belong to ``close`` (bounded)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def stats(self) -> SinkStats: ...

    @property
    def where(self) -> str:
        """Where the output goes, for messages (a file's path, ``stdout``); the name by default."""
        return self.name

    def set_status_provider(self, fn: StatusProvider | None) -> None:
        """The runtime's status, for sinks that report it (HTTP ``/healthz``, MQTT ``<topic>/stats``)."""

    def set_sinks(self, sinks: Sequence[Sink]) -> None:
        """All the run's sinks, for sinks that report their stats (HTTP ``/metrics``)."""

    def frame_observer(self) -> FrameObserver | None:
        """A function the pipeline calls after every processed frame with the frame and the tracks
        (``observer(frame, tracks)``; the HTTP sink's live page and preview), or None (the default: the
        pipeline then calls nothing). It runs on the frame loop: it must return at once."""
        return None


FrameObserver = Callable[[Frame, Sequence[Any]], None]
"""``observer(frame, tracks)``: the frame just processed and the tracker's tracks
(:class:`edge_fer.track.Track`, read-only)."""
