"""Scoring face boxes against hand-annotated ground truth: IoU matching, precision, recall
(``benchmarks/detection_recall.py``; not part of the runtime).

Ground truth is a JSON file (schema ``edge-fer-face-boxes/1``, e.g.
``benchmarks/data/hamilton_faces.json``)::

    {"schema": "edge-fer-face-boxes/1", "frame_size": [640, 360],
     "frames": {"0": {"faces": [{"box": [x, y, w, h], "pose": "frontal"}, ...],
                      "ignore": [[x, y, w, h], ...]}, ...}}

Every listed frame is annotated completely (an empty ``faces`` list means: no face there).
``ignore`` regions hold faces that are neither required nor penalised (a defocused crowd).

Matching, per frame: pairs (truth, detection) with IoU >= ``iou_threshold`` are taken greedily,
highest IoU first, one detection per face. A matched detection is a true positive; a face left
unmatched is a false negative; a detection left unmatched is ignored when at least
``ignore_cover`` of its area lies inside one ignore region, else it is a false positive.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_fer.boxes import iou
from edge_fer.errors import DataError

SCHEMA = "edge-fer-face-boxes/1"
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class TruthFace:
    box: Box
    pose: str = "frontal"
    tags: tuple[str, ...] = ()  # e.g. "truncated", "blurred"


@dataclass(frozen=True)
class FrameTruth:
    faces: tuple[TruthFace, ...] = ()
    ignore: tuple[Box, ...] = ()


@dataclass
class GroundTruth:
    frames: dict[int, FrameTruth]
    frame_size: tuple[int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_faces(self) -> int:
        return sum(len(f.faces) for f in self.frames.values())


def coverage(inner: Sequence[float], outer: Sequence[float]) -> float:
    """The fraction of ``inner``'s area that lies inside ``outer``."""
    ax, ay, aw, ah = (float(v) for v in inner[:4])
    bx, by, bw, bh = (float(v) for v in outer[:4])
    if aw <= 0 or ah <= 0:
        return 0.0
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return ix * iy / (aw * ah)


def _box(value: Any, where: str) -> Box:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise DataError(f"{where}: a box must be [x, y, w, h] numbers, got {value!r}")
    x, y, w, h = (float(v) for v in value)
    if w <= 0 or h <= 0:
        raise DataError(f"{where}: box {value!r} has no area")
    return (x, y, w, h)


def parse_ground_truth(doc: Mapping[str, Any], source: str = "ground truth") -> GroundTruth:
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
        raise DataError(
            f"{source}: not an {SCHEMA} file (its 'schema' is {doc.get('schema') if isinstance(doc, Mapping) else None!r})"
        )
    frames_in = doc.get("frames")
    if not isinstance(frames_in, Mapping):
        raise DataError(f"{source}: 'frames' must be an object of frame number -> {{faces, ignore}}")
    frames: dict[int, FrameTruth] = {}
    for key, body in frames_in.items():
        try:
            idx = int(key)
        except (TypeError, ValueError):
            raise DataError(f"{source}: frame key {key!r} is not a frame number") from None
        if idx < 0 or not isinstance(body, Mapping):
            raise DataError(f"{source}: frame {key!r} must be a non-negative number with an object")
        faces = []
        for i, f in enumerate(body.get("faces", [])):
            where = f"{source}: frame {idx} face {i}"
            if isinstance(f, Mapping):
                tags = tuple(k for k in ("truncated", "blurred", "occluded") if f.get(k))
                faces.append(TruthFace(_box(f.get("box"), where), str(f.get("pose", "frontal")), tags))
            else:
                faces.append(TruthFace(_box(f, where)))
        ignore = tuple(_box(b, f"{source}: frame {idx} ignore {i}") for i, b in enumerate(body.get("ignore", [])))
        frames[idx] = FrameTruth(tuple(faces), ignore)
    size = doc.get("frame_size")
    return GroundTruth(
        frames,
        tuple(size) if isinstance(size, (list, tuple)) and len(size) == 2 else None,
        {k: v for k, v in doc.items() if k != "frames"},
    )


def load_ground_truth(path: str | Path) -> GroundTruth:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"cannot read ground truth {p}: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{p}: not JSON ({e})") from None
    return parse_ground_truth(doc, str(p))


@dataclass
class FrameMatch:
    pairs: list[tuple[int, int, float]]  # (face index, detection index, IoU)
    false_positives: list[int]  # detection indices
    ignored: list[int]  # detection indices inside an ignore region
    missed: list[int]  # face indices

    @property
    def tp(self) -> int:
        return len(self.pairs)


def match_frame(
    truth: FrameTruth, detections: Sequence[Sequence[float]], iou_threshold: float = 0.5, ignore_cover: float = 0.5
) -> FrameMatch:
    """Greedy one-to-one matching of one frame's detections to its faces (see the module doc)."""
    cand = []
    for fi, face in enumerate(truth.faces):
        for di, d in enumerate(detections):
            v = iou(face.box, d)
            if v >= iou_threshold:
                cand.append((v, fi, di))
    cand.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_f: set[int] = set()
    used_d: set[int] = set()
    pairs = []
    for v, fi, di in cand:
        if fi not in used_f and di not in used_d:
            used_f.add(fi)
            used_d.add(di)
            pairs.append((fi, di, v))
    fps, ign = [], []
    for di, d in enumerate(detections):
        if di in used_d:
            continue
        if any(coverage(d, g) >= ignore_cover for g in truth.ignore):
            ign.append(di)
        else:
            fps.append(di)
    missed = [fi for fi in range(len(truth.faces)) if fi not in used_f]
    return FrameMatch(sorted(pairs), fps, ign, missed)


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    ignored: int = 0
    frames: int = 0
    by_pose: dict[str, list[int]] = field(default_factory=dict)  # pose -> [found, total]
    mean_iou: float = 0.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "ignored": self.ignored,
            "frames": self.frames,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "mean_iou": round(self.mean_iou, 4),
            "recall_by_pose": {k: v[:] for k, v in sorted(self.by_pose.items())},
        }


def score(
    truth: GroundTruth,
    detections: Mapping[int, Iterable[Sequence[float]]],
    iou_threshold: float = 0.5,
    ignore_cover: float = 0.5,
) -> Score:
    """Precision and recall over every annotated frame. ``detections``: frame number -> boxes; an
    annotated frame missing from it counts as a frame where nothing was detected."""
    s = Score()
    ious: list[float] = []
    for idx in sorted(truth.frames):
        ft = truth.frames[idx]
        dets = [tuple(float(v) for v in d[:4]) for d in detections.get(idx, ())]
        m = match_frame(ft, dets, iou_threshold, ignore_cover)
        s.frames += 1
        s.tp += m.tp
        s.fp += len(m.false_positives)
        s.ignored += len(m.ignored)
        s.fn += len(m.missed)
        ious += [v for _, _, v in m.pairs]
        found = {fi for fi, _, _ in m.pairs}
        for fi, face in enumerate(ft.faces):
            row = s.by_pose.setdefault(face.pose, [0, 0])
            row[1] += 1
            row[0] += fi in found
    s.mean_iou = sum(ious) / len(ious) if ious else 0.0
    return s


__all__ = [
    "SCHEMA",
    "TruthFace",
    "FrameTruth",
    "GroundTruth",
    "FrameMatch",
    "Score",
    "iou",
    "coverage",
    "parse_ground_truth",
    "load_ground_truth",
    "match_frame",
    "score",
]
