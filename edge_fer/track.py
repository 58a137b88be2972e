"""Tracking faces across frames: stable ids, smoothed probabilities, hysteresis, events.

Matching is greedy on IoU, with a centroid-distance fallback for fast moves (camera pans). Each
track keeps an EMA of its class probabilities; its *stable* label changes only when another label
beats it by ``switch_margin`` for ``switch_frames`` consecutive updates, so labels do not flicker.

Events: ``face_appeared`` (a track confirmed after ``min_hits`` detections), ``expression_changed``,
``face_left`` (unseen for more than ``max_missed`` frames, or the stream ended), and with
``per_frame=True`` one ``face`` event per tracked face per frame.

Crop quality (:mod:`edge_fer.quality`): with ``quality`` given to :meth:`Tracker.update`, a
low-quality crop never starts a track, never counts towards confirming one and never moves its
probabilities (so it cannot switch a label); it only keeps an existing track's box where the face
is. Events then carry the track's last ``recon_error`` and ``low_quality``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_fer.boxes import iou  # re-exported: edge_fer.track.iou
from edge_fer.config import TrackerConfig  # the [tracker] section: the tracker's options, with their ranges
from edge_fer.types import Event, Face, Prediction, int_box

__all__ = ["Track", "Tracker", "TrackerConfig", "iou"]


@dataclass
class Track:
    id: int
    box: tuple[int, int, int, int]
    scores: np.ndarray
    first_frame: int
    first_ts: float
    last_frame: int
    last_ts: float
    hits: int = 1
    frames: int = 1
    label: str | None = None  # stable label, set when confirmed
    candidate: str | None = None
    candidate_count: int = 0
    confirmed: bool = False
    score: float = 1.0
    recon_error: float | None = None  # reconstruction error of the last crop (quality gate on)
    low_quality: bool = False
    updated: bool = field(default=False, repr=False)
    first_media: float | None = None  # video file: media time (s) of the first and last detection
    last_media: float | None = None


class Tracker:
    centroid_factor = 0.6  # fallback match: centre distance < factor * track box side

    def __init__(
        self, config: TrackerConfig | None = None, labels: Sequence[str] | None = None, per_frame: bool = False
    ):
        self.cfg = config or TrackerConfig()
        self.labels = tuple(labels) if labels else None
        self.per_frame = per_frame
        self.tracks: list[Track] = []
        self._next_id = 1
        self.last_assignment: list[int] = []  # track id per face of the last update()
        self._media: float | None = None  # media time of the frame being handled (video files)

    # -- helpers -------------------------------------------------------------------------------
    def _labels(self, pred: Prediction) -> tuple[str, ...]:
        if self.labels is None:
            self.labels = pred.labels
        return self.labels

    def _scores_dict(self, t: Track) -> dict[str, float]:
        return {n: round(float(p), 4) for n, p in zip(self.labels or (), t.scores)}

    def _event(self, kind: str, t: Track, frame: int, ts: float, **extra) -> Event:
        if t.recon_error is not None:
            extra = {"recon_error": t.recon_error, "low_quality": t.low_quality, **extra}
        label = t.label or self._argmax(t)
        return Event(kind, ts, frame, t.id, label, self._scores_dict(t), t.box, extra, media_time_s=self._media)

    def _argmax(self, t: Track) -> str:
        return (self.labels or ())[int(np.argmax(t.scores))] if self.labels else ""

    def carried_faces(self) -> list[Face]:
        """Faces at the tracks' last boxes: what the pipeline classifies on frames without detection."""
        return [Face(t.box, t.score) for t in self.tracks]

    def _match(self, boxes: Sequence[tuple[int, int, int, int]]) -> list[tuple[int, int]]:
        pairs: list[tuple[float, int, int]] = []
        for ti, t in enumerate(self.tracks):
            for fi, b in enumerate(boxes):
                v = iou(t.box, b)
                if v >= self.cfg.iou_threshold:
                    pairs.append((v, ti, fi))
        pairs.sort(reverse=True)
        used_t: set[int] = set()
        used_f: set[int] = set()
        out: list[tuple[int, int]] = []
        for _, ti, fi in pairs:
            if ti not in used_t and fi not in used_f:
                used_t.add(ti)
                used_f.add(fi)
                out.append((ti, fi))
        cands = []
        for ti, t in enumerate(self.tracks):
            if ti in used_t:
                continue
            tx, ty = t.box[0] + t.box[2] / 2, t.box[1] + t.box[3] / 2
            side = max(t.box[2], t.box[3])
            for fi, b in enumerate(boxes):
                if fi in used_f:
                    continue
                d = float(np.hypot(b[0] + b[2] / 2 - tx, b[1] + b[3] / 2 - ty))
                ratio = max(b[2], b[3]) / max(1, side)
                if d < self.centroid_factor * side and 0.5 < ratio < 2.0:
                    cands.append((d, ti, fi))
        cands.sort()
        for _, ti, fi in cands:
            if ti not in used_t and fi not in used_f:
                used_t.add(ti)
                used_f.add(fi)
                out.append((ti, fi))
        return out

    # -- the step --------------------------------------------------------------------------------
    def update(
        self,
        faces: Sequence[Face],
        predictions: Sequence[Prediction],
        frame: int,
        ts: float,
        detected: bool = True,
        quality: Sequence[Any] | None = None,
        media_time: float | None = None,
    ) -> list[Event]:
        """Feed one frame's faces and their predictions; returns the events it causes.

        ``detected=False`` (frames between detections, where ``faces`` are the carried boxes):
        probabilities are updated but the tracks are not counted as seen again. ``quality``: one
        :class:`~edge_fer.quality.CropQuality` (``error``, ``low``) per face, or None (no gate).
        ``media_time``: the frame's position in a video file (s); events then carry it, and track
        durations are measured in it instead of wall-clock time."""
        cfg = self.cfg
        self._media = media_time
        events: list[Event] = []
        boxes = [int_box(f.box) for f in faces]
        for p in predictions[:1]:
            self._labels(p)
        matches = self._match(boxes)
        assignment = [0] * len(boxes)
        matched_f = set()
        for t in self.tracks:
            t.updated = False
        low = [bool(q.low) for q in quality] if quality is not None else [False] * len(boxes)
        for ti, fi in matches:
            t = self.tracks[ti]
            if quality is not None:
                t.recon_error, t.low_quality = float(quality[fi].error), low[fi]
            assignment[fi] = t.id
            matched_f.add(fi)
            if low[fi]:  # follow the face, but this crop neither confirms the track nor moves its label
                t.box, t.score = boxes[fi], faces[fi].score
                t.updated = t.confirmed  # a per-frame event shows the flag; confirmation needs a good crop
                if detected:
                    t.last_frame, t.last_ts, t.last_media = frame, ts, media_time
                continue
            probs = predictions[fi].scores.astype(np.float32)
            t.scores = (1.0 - cfg.ema_alpha) * t.scores + cfg.ema_alpha * probs
            t.box, t.score, t.frames, t.updated = boxes[fi], faces[fi].score, t.frames + 1, True
            if detected:
                t.hits += 1
                t.last_frame, t.last_ts, t.last_media = frame, ts, media_time
            assignment[fi] = t.id
            matched_f.add(fi)
            if t.confirmed:
                ev = self._hysteresis(t, frame, ts)
                if ev:
                    events.append(ev)
        if detected:
            for fi, b in enumerate(boxes):
                if fi in matched_f or low[fi]:  # a low-quality crop never starts a track
                    continue
                t = Track(
                    self._next_id,
                    b,
                    predictions[fi].scores.astype(np.float32).copy(),
                    frame,
                    ts,
                    frame,
                    ts,
                    score=faces[fi].score,
                    first_media=media_time,
                    last_media=media_time,
                )
                if quality is not None:
                    t.recon_error = float(quality[fi].error)
                t.updated = True
                self._next_id += 1
                self.tracks.append(t)
                assignment[fi] = t.id
        for t in self.tracks:
            if not t.confirmed and t.hits >= cfg.min_hits and t.updated:
                t.confirmed = True
                t.label = self._argmax(t)
                events.append(self._event("face_appeared", t, frame, ts))
        if detected:
            kept = []
            for t in self.tracks:
                if frame - t.last_frame > cfg.max_missed:
                    if t.confirmed:
                        events.append(self._left(t, frame, ts))
                else:
                    kept.append(t)
            self.tracks = kept
        if self.per_frame:
            for t in self.tracks:
                if t.confirmed and t.updated:
                    events.append(self._event("face", t, frame, ts, confidence=round(float(np.max(t.scores)), 4)))
        self.last_assignment = assignment
        return events

    def _hysteresis(self, t: Track, frame: int, ts: float) -> Event | None:
        labels = self.labels or ()
        best = int(np.argmax(t.scores))
        cur = labels.index(t.label) if t.label in labels else best
        if best != cur and t.scores[best] >= t.scores[cur] + self.cfg.switch_margin:
            if t.candidate == labels[best]:
                t.candidate_count += 1
            else:
                t.candidate, t.candidate_count = labels[best], 1
            if t.candidate_count >= self.cfg.switch_frames:
                previous = t.label
                t.label, t.candidate, t.candidate_count = labels[best], None, 0
                return self._event("expression_changed", t, frame, ts, previous=previous)
        else:
            t.candidate, t.candidate_count = None, 0
        return None

    def _left(self, t: Track, frame: int, ts: float) -> Event:
        """``face_left``: ``duration_s`` is the time from the track's first to its last detection, in
        wall-clock time for live sources; for a video file in media time, with ``media_start_s`` and
        ``media_end_s`` (the media times of those two detections)."""
        if t.first_media is not None and t.last_media is not None:
            start, end = t.first_media, t.last_media
            media = {"media_start_s": round(start, 6), "media_end_s": round(end, 6)}
        else:
            start, end, media = t.first_ts, t.last_ts, {}
        return self._event(
            "face_left", t, frame, ts, duration_s=round(max(0.0, end - start), 3), frames=t.frames, **media
        )

    def finish(self, frame: int, ts: float, media_time: float | None = None) -> list[Event]:
        """End of stream (or of a still image): ``face_left`` for every confirmed track; reset.
        ``media_time``: the last frame's position in a video file."""
        if media_time is not None:
            self._media = media_time
        events = [self._left(t, frame, ts) for t in self.tracks if t.confirmed]
        self.tracks = []
        return events

    @property
    def active(self) -> int:
        return sum(1 for t in self.tracks if t.confirmed)
