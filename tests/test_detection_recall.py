"""Detection scoring (benchmarks/detection_scoring.py), the hand-annotated boxes of the shared clip
(benchmarks/data/hamilton_faces.json) and the window search (edge_fer.detect.roi)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from edge_fer.boxes import iou
from edge_fer.detect import WindowDetector
from edge_fer.detect.roi import RoiDetector, roi_window
from edge_fer.errors import ConfigError, DataError
from edge_fer.types import Face
from tests.benchmark_modules import benchmark_module

_scoring = benchmark_module("detection_scoring")
FrameTruth, GroundTruth, TruthFace = _scoring.FrameTruth, _scoring.GroundTruth, _scoring.TruthFace
coverage, load_ground_truth, match_frame = _scoring.coverage, _scoring.load_ground_truth, _scoring.match_frame
parse_ground_truth, score = _scoring.parse_ground_truth, _scoring.score

ROOT = Path(__file__).resolve().parents[1]
TRUTH = ROOT / "benchmarks" / "data" / "hamilton_faces.json"


# --- IoU and coverage -----------------------------------------------------------------------------
def test_iou_known_values():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0  # touching edges
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (2, 2, 5, 5)) == pytest.approx(25 / 100)
    assert iou((0, 0, 0, 10), (0, 0, 10, 10)) == 0.0  # empty box
    assert iou((0, 0, 10, 10), (5, 5, 10, 10)) == iou((5, 5, 10, 10), (0, 0, 10, 10))


def test_coverage_is_fraction_of_inner_box():
    assert coverage((2, 2, 4, 4), (0, 0, 10, 10)) == 1.0
    assert coverage((8, 0, 4, 10), (0, 0, 10, 10)) == pytest.approx(0.5)
    assert coverage((20, 20, 5, 5), (0, 0, 10, 10)) == 0.0


# --- matching -------------------------------------------------------------------------------------
def _frame(*faces, ignore=()):
    return FrameTruth(
        tuple(TruthFace(tuple(map(float, f))) for f in faces), tuple(tuple(map(float, g)) for g in ignore)
    )


def test_match_one_to_one_highest_iou_first():
    truth = _frame((0, 0, 100, 100), (200, 0, 100, 100))
    dets = [(5, 5, 100, 100), (0, 0, 100, 100), (210, 10, 90, 90), (400, 300, 50, 50)]
    m = match_frame(truth, dets)
    assert [(f, d) for f, d, _ in m.pairs] == [(0, 1), (1, 2)]  # the exact box wins over the shifted one
    assert m.false_positives == [0, 3]  # a duplicate of a matched face is a false positive
    assert m.missed == []


def test_match_threshold_is_inclusive_and_misses_are_counted():
    truth = _frame((0, 0, 10, 10))
    half = (0, 0, 10, 5)  # IoU exactly 0.5
    assert match_frame(truth, [half]).tp == 1
    assert match_frame(truth, [half], iou_threshold=0.51).tp == 0
    m = match_frame(truth, [])
    assert m.missed == [0] and m.false_positives == []


def test_detections_inside_ignore_regions_count_neither_way():
    truth = _frame((0, 0, 50, 50), ignore=[(100, 100, 60, 60)])
    m = match_frame(truth, [(0, 0, 50, 50), (105, 105, 40, 40), (150, 150, 40, 40), (300, 0, 20, 20)])
    assert m.tp == 1
    assert m.ignored == [1]  # fully inside the ignore region
    assert m.false_positives == [2, 3]  # (150,150,40,40) is only 1/16 inside it


def test_ignore_region_never_excuses_a_missed_face():
    truth = _frame((0, 0, 50, 50), ignore=[(0, 0, 50, 50)])
    s = score(GroundTruth({0: truth}), {})
    assert (s.tp, s.fn, s.fp) == (0, 1, 0)


def test_score_sums_frames_and_reports_by_pose():
    gt = GroundTruth(
        {
            0: FrameTruth((TruthFace((0, 0, 10, 10), "frontal"), TruthFace((50, 50, 10, 10), "profile"))),
            10: FrameTruth(()),
            20: FrameTruth((TruthFace((0, 0, 10, 10), "frontal"),)),
        }
    )
    s = score(gt, {0: [(0, 0, 10, 10)], 10: [(5, 5, 5, 5)], 99: [(0, 0, 1, 1)]})  # frame 99 is not annotated
    assert (s.tp, s.fp, s.fn, s.frames) == (1, 1, 2, 3)
    assert s.precision == pytest.approx(0.5)
    assert s.recall == pytest.approx(1 / 3)
    assert s.f1 == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert s.by_pose == {"frontal": [1, 2], "profile": [0, 1]}
    d = s.to_dict()
    assert d["recall"] == round(1 / 3, 4) and d["mean_iou"] == 1.0


def test_empty_score_is_defined():
    s = score(GroundTruth({}), {})
    assert s.precision == 1.0 and s.recall == 1.0 and not math.isnan(s.f1)


# --- the file format ------------------------------------------------------------------------------
def test_parse_rejects_malformed_documents(tmp_path):
    ok = {"schema": "edge-fer-face-boxes/1", "frames": {"0": {"faces": [[0, 0, 5, 5]], "ignore": []}}}
    assert parse_ground_truth(ok).num_faces == 1
    for bad in (
        {"frames": {}},
        {"schema": "edge-fer-face-boxes/1", "frames": []},
        {"schema": "edge-fer-face-boxes/1", "frames": {"x": {"faces": []}}},
        {"schema": "edge-fer-face-boxes/1", "frames": {"0": {"faces": [[0, 0, 5]]}}},
        {"schema": "edge-fer-face-boxes/1", "frames": {"0": {"faces": [{"box": [0, 0, 0, 5]}]}}},
        {"schema": "edge-fer-face-boxes/1", "frames": {"0": {"faces": [], "ignore": [[0, 0, True, 5]]}}},
    ):
        with pytest.raises(DataError):
            parse_ground_truth(bad)
    p = tmp_path / "t.json"
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not JSON"):
        load_ground_truth(p)
    with pytest.raises(DataError, match="cannot read"):
        load_ground_truth(tmp_path / "missing.json")


# --- the annotations of the shared clip -----------------------------------------------------------
def test_hamilton_annotations_cover_every_tenth_frame():
    gt = load_ground_truth(TRUTH)
    assert sorted(gt.frames) == list(range(0, 275, 10))  # 28 frames, every one listed
    assert gt.frame_size == (640, 360)
    assert gt.num_faces == 47
    raw = json.loads(TRUTH.read_text(encoding="utf-8"))
    assert raw["video_sha256"] == "0b5ff4c55a4cd69f79956f312681730881fe1e2a9e6146e75c31636dffcc7e28"
    assert any("hand" in line for line in raw["rule"])  # the annotation rule travels with the boxes
    poses = {f.pose for ft in gt.frames.values() for f in ft.faces}
    assert poses == {"frontal", "three_quarter", "profile"}
    for idx, ft in gt.frames.items():
        for f in list(ft.faces) + [TruthFace(b) for b in ft.ignore]:
            x, y, w, h = f.box
            assert x >= 0 and y >= 0 and x + w <= 640 and y + h <= 360, (idx, f.box)
            assert min(w, h) >= 20, (idx, f.box)  # the rule: faces of at least ~20 px
        boxes = [f.box for f in ft.faces]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert iou(boxes[i], boxes[j]) < 0.3, (idx, boxes[i], boxes[j])  # no face annotated twice


def test_annotations_score_themselves_perfectly():
    gt = load_ground_truth(TRUTH)
    s = score(gt, {i: [f.box for f in ft.faces] for i, ft in gt.frames.items()})
    assert (s.tp, s.fp, s.fn) == (47, 0, 0)


def test_haar_default_on_annotated_frames_finds_the_frontal_faces(hamilton_clip):
    """The real detector on the real frames: a guard against an annotation shifted by a frame or a
    box convention that no detector matches (the singer's frontal close-ups, frames 90-210)."""
    import cv2

    from edge_fer.detect import create_detector

    gt = load_ground_truth(TRUTH)
    want = {90, 100, 140, 150, 160}
    cap = cv2.VideoCapture(str(hamilton_clip))
    det = create_detector("haar")
    boxes = {}
    i = 0
    while i <= max(want):
        ok, img = cap.read()
        if not ok:
            break
        if i in want:
            boxes[i] = [f.box for f in det.detect(img)]
        i += 1
    cap.release()
    sub = GroundTruth({k: gt.frames[k] for k in want})
    s = score(sub, boxes)
    assert s.tp >= 4 and s.fp == 0, s.to_dict()


# --- the window search ----------------------------------------------------------------------------
def test_roi_window_is_square_around_the_box_and_clipped():
    assert roi_window((100, 100, 50, 50), 0.5, 640, 360) == (75, 75, 175, 175)
    x0, y0, x1, y1 = roi_window((0, 300, 100, 60), 0.5, 640, 360)
    assert (x0, y0, x1, y1) == (0, 230, 150, 360)  # 200 px square around (50, 330), clipped


class _Fake(WindowDetector):
    """Full frame: a face where ``full`` says; window: a face at ``roi`` (or nothing)."""

    name = "fake"

    def __init__(self):
        self.full: list[tuple[int, int, int, int]] = []
        self.roi: tuple[int, int, int, int] | None = None
        self.calls: list[str] = []

    def detect(self, image):
        self.calls.append("full")
        return [Face(b) for b in self.full]

    def detect_roi(self, image, box, window):
        self.calls.append("roi")
        x0, y0, x1, y1 = window
        assert x0 <= box[0] and y0 <= box[1] and box[0] + box[2] <= x1 and box[1] + box[3] <= y1
        return Face(self.roi) if self.roi else None


def test_roi_detector_full_pass_every_n_and_windows_between():
    inner = _Fake()
    det = RoiDetector(inner, full_every=4, patience=1)
    img = np.zeros((360, 640), np.uint8)
    inner.full = [(100, 100, 50, 50)]
    inner.roi = (104, 100, 50, 50)
    assert [f.box for f in det.detect(img)] == [(100, 100, 50, 50)]  # frame 0: full pass
    assert [f.box for f in det.detect(img)] == [(104, 100, 50, 50)]  # frames 1-3: windows only
    inner.roi = None
    assert det.detect(img) == []  # lost: searched once more (patience 1) ...
    assert det.detect(img) == []  # ... then dropped
    assert inner.calls == ["full", "roi", "roi", "roi"]
    inner.full = []
    assert det.detect(img) == [] and inner.calls[-1] == "full"  # frame 4: full pass, nothing known
    assert det.detect(img) == [] and inner.calls[-1] == "full"  # nothing to search between passes


def test_windows_run_on_one_opencv_thread_and_full_passes_on_all():
    """A 64 px window through OpenCV's thread pool cost twice its single-thread time on 2 cores
    (benchmarks/opencv_threads.py); the full pass keeps the pool, and the count is put back."""
    cv2 = pytest.importorskip("cv2")

    class Counting(_Fake):
        def __init__(self):
            super().__init__()
            self.threads: list[tuple[str, int]] = []

        def detect(self, image):
            self.threads.append(("full", cv2.getNumThreads()))
            return super().detect(image)

        def detect_roi(self, image, box, window):
            self.threads.append(("roi", cv2.getNumThreads()))
            return super().detect_roi(image, box, window)

    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        inner = Counting()
        inner.full = [(100, 100, 50, 50)]
        inner.roi = (102, 100, 50, 50)
        det = RoiDetector(inner, full_every=2)
        img = np.zeros((360, 640), np.uint8)
        for _ in range(3):
            det.detect(img)
        assert inner.threads == [("full", 3), ("roi", 1), ("full", 3)]
        assert cv2.getNumThreads() == 3
        inner.roi = None
        inner.full = []
        inner.detect_roi = lambda *a: 1 / 0  # a window that fails still puts the count back
        with pytest.raises(ZeroDivisionError):
            det.detect(img)
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


def test_roi_detector_keeps_a_face_the_full_pass_missed():
    inner = _Fake()
    det = RoiDetector(inner, full_every=2)
    img = np.zeros((360, 640), np.uint8)
    inner.full = [(100, 100, 50, 50)]
    det.detect(img)
    inner.full = [(400, 100, 40, 40)]  # the next full pass sees only a newcomer
    inner.roi = (102, 101, 50, 50)
    det.detect(img)  # frame 1: window
    got = sorted(f.box for f in det.detect(img))  # frame 2: full pass + window of the missed face
    assert got == [(102, 101, 50, 50), (400, 100, 40, 40)]


def test_roi_detector_refuses_detectors_without_window_search():
    class NoRoi:
        name = "x"

        def detect(self, image):
            return []

    with pytest.raises(ConfigError):
        RoiDetector(NoRoi())
    with pytest.raises(ConfigError):
        RoiDetector(_Fake(), full_every=0)


def test_haar_window_search_finds_the_face_it_is_given(face_images):
    """Haar's detect_roi on a real photo: the face found on the full image is found again in a
    window around it, at about the same place and size."""
    import cv2

    from edge_fer.detect import create_detector

    img = cv2.imread(str(face_images["obama_240p"]))
    det = create_detector("haar", scale=1.0)
    faces = det.detect(img)
    assert faces
    box = faces[0].box
    h, w = img.shape[:2]
    again = det.detect_roi(img, box, roi_window(box, 0.4, w, h))
    assert again is not None and iou(again.box, box) > 0.6
    assert det.detect_roi(np.zeros_like(img), box, roi_window(box, 0.4, w, h)) is None


def test_roi_detector_counts_full_every_in_frames_when_called_every_nth_frame():
    inner = _Fake()
    det = RoiDetector(inner, full_every=12, margin=0.4, frame_gap=3)  # the pipeline calls it every 3rd frame
    assert det.full_every == 4  # calls: still a full pass every 12 frames
    assert det.margin == pytest.approx(0.8)  # faces move further between calls: wider windows
    assert RoiDetector(_Fake(), full_every=12, frame_gap=5).full_every == 3  # ceil(12 / 5)


def test_a_new_shot_brings_the_full_pass_forward():
    """A cut (the coarse pixel grid changes by more than ``cut_threshold`` on average) makes a full
    pass at once; the count to the next scheduled pass restarts there. Slow change does not."""
    inner = _Fake()
    det = RoiDetector(inner, full_every=8)
    dark, bright = np.zeros((360, 640, 3), np.uint8), np.full((360, 640, 3), 200, np.uint8)
    det.detect(dark)  # frame 0: full pass
    for _ in range(2):
        det.detect(dark + 5)  # small change: no full pass
    assert inner.calls == ["full"]
    det.detect(bright)  # frame 3: a new shot
    assert inner.calls == ["full", "full"]
    for _ in range(7):
        det.detect(bright)
    assert inner.calls.count("full") == 2  # frames 4-10: the next scheduled pass is 8 after the cut
    det.detect(bright)
    assert inner.calls.count("full") == 3 and det.full_passes == 3

    off = _Fake()
    still = RoiDetector(off, full_every=8, cut_threshold=0)  # 0: cuts are not looked for
    for img in (dark, bright, dark):
        still.detect(img)
    assert off.calls.count("full") == 1


def test_edge_fer_run_finds_a_face_on_the_first_frame_after_a_cut(tmp_path, face_images):
    """Through the installed command on a real video: five frames of an empty room, then a cut to a
    face. The face is found on the frame of the cut (frame 5), not at the next scheduled full pass
    (frame 8), so its track is confirmed (two detections, ``tracker.min_hits``) on frame 6, not 9."""
    import cv2

    from tests.cli import run_cli

    face = cv2.imread(str(face_images["obama"]))
    face = cv2.resize(face, (640, int(face.shape[0] * 640 / face.shape[1])))[:360]
    face = cv2.copyMakeBorder(face, 0, 360 - face.shape[0], 0, 0, cv2.BORDER_CONSTANT)
    room = np.full_like(face, 90)
    cv2.rectangle(room, (60, 40), (300, 320), (40, 120, 160), -1)  # a door, no face
    video = tmp_path / "cut.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 360))
    for i in range(16):
        writer.write(room if i < 5 else face)
    writer.release()
    out = tmp_path / "events.jsonl"
    r = run_cli("run", "--source", video, "-o", out, "--per-frame")
    assert r.returncode == 0, r.stderr
    frames = [e["frame"] for e in map(json.loads, out.read_text().splitlines()) if e["type"] == "face"]
    assert frames and frames[0] == 6, frames[:3]
