"""Tracker: stable ids, EMA, hysteresis, events."""

from __future__ import annotations

import numpy as np

from edge_fer.labels import LABELS
from edge_fer.track import Tracker, TrackerConfig, iou
from edge_fer.types import Face, Prediction


def pred(label: str, p: float = 0.8) -> Prediction:
    s = np.full(7, (1 - p) / 6, np.float32)
    s[LABELS.index(label)] = p
    return Prediction(s, LABELS)


def step(tr, boxes, labels, frame, detected=True):
    return tr.update([Face(b) for b in boxes], [pred(lab) for lab in labels], frame, float(frame) / 30, detected)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert 0.3 < iou((0, 0, 10, 10), (3, 0, 10, 10)) < 0.6


def test_ids_are_stable_and_events_well_formed():
    tr = Tracker(TrackerConfig(min_hits=2, max_missed=3))
    evs = []
    for i in range(10):
        evs += step(tr, [(100 + 3 * i, 100, 50, 50), (400 - 3 * i, 120, 60, 60)], ["happy", "sad"], i)
    appeared = [e for e in evs if e.type == "face_appeared"]
    assert len(appeared) == 2 and {e.frame for e in appeared} == {1}
    assert {e.label for e in appeared} == {"happy", "sad"}
    ids = {e.track_id for e in appeared}
    assert tr.last_assignment and set(tr.last_assignment) == ids
    for e in evs:
        d = e.to_dict()
        assert {"type", "ts", "track_id", "label", "scores"} <= set(d)
        assert set(d["scores"]) == set(LABELS)
    # one face leaves: face_left after max_missed frames
    evs = []
    for i in range(10, 16):
        evs += step(tr, [(130, 100, 50, 50)], ["happy"], i)
    left = [e for e in evs if e.type == "face_left"]
    assert len(left) == 1 and left[0].label == "sad" and left[0].extra["frames"] >= 10
    assert tr.last_assignment == [min(ids)]
    fin = tr.finish(16, 1.0)
    assert [e.type for e in fin] == ["face_left"] and tr.tracks == []


def test_fast_motion_matched_by_centroid():
    tr = Tracker(TrackerConfig(min_hits=1))
    step(tr, [(100, 100, 60, 60)], ["happy"], 0)
    step(tr, [(125, 110, 60, 60)], ["happy"], 1)  # IoU < 0.3, centroid close
    assert len(tr.tracks) == 1 and tr.tracks[0].id == 1


def test_hysteresis_needs_margin_for_k_frames():
    tr = Tracker(TrackerConfig(min_hits=1, ema_alpha=1.0, switch_margin=0.1, switch_frames=3))
    box = [(10, 10, 50, 50)]
    assert step(tr, box, ["happy"], 0)[0].type == "face_appeared"
    # a flicker of 2 frames does not change the label
    assert step(tr, box, ["sad"], 1) == [] and step(tr, box, ["sad"], 2) == []
    assert step(tr, box, ["happy"], 3) == []
    assert tr.tracks[0].label == "happy"
    # 3 consecutive frames with a clear winner do
    evs = []
    for i in range(4, 7):
        evs += step(tr, box, ["sad"], i)
    assert [e.type for e in evs] == ["expression_changed"]
    assert evs[0].label == "sad" and evs[0].extra["previous"] == "happy" and evs[0].frame == 6


def test_near_tie_does_not_switch():
    tr = Tracker(TrackerConfig(min_hits=1, ema_alpha=1.0, switch_margin=0.1, switch_frames=1))
    s = np.full(7, 0.0, np.float32)
    s[LABELS.index("happy")], s[LABELS.index("sad")] = 0.48, 0.52
    tr.update([Face((0, 0, 10, 10))], [pred("happy")], 0, 0.0)
    evs = tr.update([Face((0, 0, 10, 10))], [Prediction(s, LABELS)], 1, 0.1)
    assert evs == [] and tr.tracks[0].label == "happy"


def test_ema_smooths():
    tr = Tracker(TrackerConfig(min_hits=1, ema_alpha=0.5))
    box = [(10, 10, 50, 50)]
    step(tr, box, ["happy"], 0)
    step(tr, box, ["sad"], 1)
    s = tr.tracks[0].scores
    assert abs(s[LABELS.index("happy")] - s[LABELS.index("sad")]) < 1e-6


def test_carried_frames_do_not_count_as_seen_and_per_frame_events():
    tr = Tracker(TrackerConfig(min_hits=1, max_missed=2), per_frame=True)
    evs = step(tr, [(10, 10, 50, 50)], ["happy"], 0)
    assert [e.type for e in evs] == ["face_appeared", "face"]
    for i in range(1, 4):  # carried boxes, no detection
        carried = tr.carried_faces()
        assert [f.box for f in carried] == [(10, 10, 50, 50)]
        evs = tr.update(carried, [pred("happy")], i, i / 30, detected=False)
        assert [e.type for e in evs] == ["face"]
    evs = step(tr, [], [], 4)  # detection finds nothing; last seen at 0 -> gone
    assert [e.type for e in evs] == ["face_left"]


def test_min_hits_suppresses_one_frame_false_positives():
    tr = Tracker(TrackerConfig(min_hits=2, max_missed=1))
    evs = step(tr, [(10, 10, 50, 50)], ["happy"], 0)
    evs += step(tr, [], [], 1) + step(tr, [], [], 2) + step(tr, [], [], 3)
    assert evs == [] and tr.tracks == []


def test_media_time_drives_durations_and_is_on_every_event():
    """A variable-frame-rate video: media times are irregular, the wall clock runs at its own pace.
    ``duration_s`` follows media time; without media time (live) it stays wall-clock time."""
    media = [0.0, 0.04, 0.08, 0.5, 0.54, 1.7]  # a pause in the recording between frames 2 and 3
    tr = Tracker(TrackerConfig(min_hits=2, max_missed=3))
    evs = []
    for i, t in enumerate(media):
        evs += tr.update([Face((100, 100, 50, 50))], [pred("happy")], i, 1000.0 + i * 0.001, media_time=t)
    evs += tr.finish(len(media), 2000.0, media_time=1.75)
    assert evs and all(e.media_time_s is not None and "media_time_s" in e.to_dict() for e in evs)
    left = [e for e in evs if e.type == "face_left"][0]
    assert left.media_time_s == 1.75
    d = left.to_dict()
    assert d["duration_s"] == 1.7 and d["media_start_s"] == 0.0 and d["media_end_s"] == 1.7
    assert d["ts"] == 2000.0  # ts is still the wall clock

    live = Tracker(TrackerConfig(min_hits=2, max_missed=3))
    evs = []
    for i in range(4):
        evs += live.update([Face((100, 100, 50, 50))], [pred("happy")], i, 1000.0 + i * 0.5)
    evs += live.finish(4, 1003.0)
    left = [e for e in evs if e.type == "face_left"][0].to_dict()
    assert left["duration_s"] == 1.5 and not {"media_time_s", "media_start_s", "media_end_s"} & set(left)
