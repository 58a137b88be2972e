"""The crop-quality gate: the autoencoder's reconstruction error on the device (edge_fer.quality),
the tracker's rules for low-quality crops, the pipeline's counters and /metrics."""

from __future__ import annotations

import numpy as np
import pytest

from edge_fer import config as C
from edge_fer.errors import ModelError
from edge_fer.quality import CropQuality, QualityGate, gate_from_config, quality_path
from edge_fer.track import Tracker, TrackerConfig
from edge_fer.types import Face, Prediction
from tests.ae_fixtures import face_crops, tiny_ae_run  # noqa: F401 (fixture)
from tests.cli import run_cli

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def pred(i: int, p: float = 0.9) -> Prediction:
    s = np.full(7, (1 - p) / 6, np.float32)
    s[i] = p
    return Prediction(s, LABELS)


GOOD, BAD = CropQuality(0.01, False), CropQuality(0.5, True)


# --- the tracker's rules (no model needed) ----------------------------------------------------------


def test_low_quality_crop_does_not_open_a_track():
    tr = Tracker(TrackerConfig(min_hits=1))
    face = Face((10, 10, 50, 50))
    for f in range(5):
        assert tr.update([face], [pred(3)], f, float(f), quality=[BAD]) == []
    assert tr.tracks == [] and tr.last_assignment == [0]
    ev = tr.update([face], [pred(3)], 5, 5.0, quality=[GOOD])
    assert [e.type for e in ev] == ["face_appeared"]
    d = ev[0].to_dict()
    assert d["recon_error"] == pytest.approx(0.01) and d["low_quality"] is False


def test_low_quality_crops_do_not_confirm_or_switch_a_label():
    tr = Tracker(TrackerConfig(min_hits=2, switch_frames=2), per_frame=True)
    face = Face((10, 10, 50, 50))
    tr.update([face], [pred(3)], 0, 0.0, quality=[GOOD])
    tr.update([face], [pred(3)], 1, 1.0, quality=[BAD])  # does not count as the second hit
    assert not tr.tracks[0].confirmed
    ev = tr.update([face], [pred(3)], 2, 2.0, quality=[GOOD])
    assert "face_appeared" in [e.type for e in ev]
    # many confident 'sad' crops, all low quality: the label stays 'happy', the track stays alive
    for f in range(3, 30):
        ev = tr.update([face], [pred(4, 0.99)], f, float(f), quality=[BAD])
        assert all(e.type == "face" for e in ev)
        assert all(e.label == "happy" and e.extra["low_quality"] is True for e in ev)
    assert tr.tracks and tr.tracks[0].label == "happy"
    # the same crops with good quality switch it
    types = [e.type for f in range(30, 34) for e in tr.update([face], [pred(4, 0.99)], f, float(f), quality=[GOOD])]
    assert "expression_changed" in types and tr.tracks[0].label == "sad"


def test_without_quality_the_tracker_is_unchanged():
    tr = Tracker(TrackerConfig(min_hits=1))
    ev = tr.update([Face((0, 0, 40, 40))], [pred(0)], 0, 0.0)
    assert ev[0].type == "face_appeared" and "recon_error" not in ev[0].to_dict()


def test_metrics_count_low_quality_faces():
    from edge_fer.sinks.http import render_metrics

    text = render_metrics({"frames": 3, "faces": 5, "low_quality_faces": 2})
    assert "edge_fer_low_quality_faces_total 2" in text


def test_config_section_and_missing_model(tmp_path):
    cfg = C.build(None, {"quality.enabled": True, "quality.threshold": 0.05})
    assert cfg.quality.threshold == 0.05
    with pytest.raises(Exception, match="quality.threshold"):
        C.build(None, {"quality.threshold": 2.0})
    # no autoencoder next to the bundle: no gate; one named but missing: an error
    assert gate_from_config(cfg.quality, tmp_path / "m.tflite") is None
    assert gate_from_config(C.build(None, {"quality.enabled": False}).quality, tmp_path / "m.tflite") is None
    with pytest.raises(ModelError, match="cannot read quality model"):
        gate_from_config(C.build(None, {"quality.model": str(tmp_path / "nope.tflite")}).quality, None)


# --- the int8 autoencoder through the runtime -------------------------------------------------------


def test_noise_scores_a_higher_error_than_a_face(tiny_ae_bundle):
    from edge_fer.classify import Classifier

    clf = Classifier.from_file(tiny_ae_bundle)
    gate = QualityGate.from_file(quality_path(tiny_ae_bundle))
    assert gate.calibration["split"] and gate.threshold > 0
    _, held = face_crops()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (4, 48, 48), dtype=np.uint8)
    e_face = gate.errors(clf.prepare_crops(list(held)), clf.input_spec)
    e_noise = gate.errors(clf.prepare_crops(list(noise)), clf.input_spec)
    assert e_noise.min() > e_face.max(), (e_face, e_noise)
    q = gate.assess(clf.prepare_crops(list(noise)), clf.input_spec)
    assert all(c.low for c in q)
    # a config threshold overrides the bundle's
    assert QualityGate.from_file(quality_path(tiny_ae_bundle), threshold=0.123).threshold == 0.123


def test_gate_refuses_a_classifier_bundle(tiny_ae_bundle):
    with pytest.raises(ModelError, match="not an edge-fer autoencoder"):
        QualityGate.from_file(tiny_ae_bundle)


def test_pipeline_flags_and_counts_low_quality_crops(tmp_path, tiny_ae_bundle):
    """A photo source through the real pipeline: a face that passes, and with a tiny threshold
    every crop is low quality, so no track opens and the counter says so."""
    import cv2

    from edge_fer.daemon import Daemon
    from edge_fer.pipeline import Pipeline
    from tests.test_pipeline import ListSink

    _, held = face_crops()
    img = np.full((240, 320), 40, np.uint8)
    img[60:180, 100:220] = cv2.resize(held[0], (120, 120))
    p = tmp_path / "face.png"
    cv2.imwrite(str(p), img)

    from edge_fer.detect import Detector

    class Det(Detector):
        wants_gray = True

        def detect(self, image):
            return [Face((110, 70, 100, 100))]

    for threshold, low in ((1.0, False), (1e-6, True)):
        cfg = C.build(
            None,
            {
                "source.uri": str(p),
                "model.path": str(tiny_ae_bundle),
                "quality.threshold": threshold,
                "output.path": str(tmp_path / "ev.jsonl"),
                "output.per_frame": True,
            },
        )
        sink = ListSink()
        pipe = Pipeline.from_config(cfg, extra_sinks=[sink])
        pipe.detector = Det()
        Daemon(pipe).run()
        st = pipe.status()
        assert st.faces == 1 and st.low_quality_faces == int(low)
        appeared = [e for e in sink.events if e["type"] == "face_appeared"]
        if low:
            assert appeared == []
        else:
            assert appeared and appeared[0]["low_quality"] is False and appeared[0]["recon_error"] > 0


@pytest.mark.train
def test_convert_logs_the_calibrated_threshold_not_a_placeholder(tiny_ae_run, tmp_path):
    """`edge-fer convert --write-quality-gate` logged 'threshold 1.00000 (config)' from the gate it loads to
    measure errors before the threshold exists; it now logs the calibrated one, as stored."""
    import json
    import re

    out = tmp_path / "b.tflite"
    cmd = ["convert", str(tiny_ae_run), "-o", str(out), "--write-quality-gate"]
    cmd += ["--max-drop", "100", "--calib-samples", "40", "--latency-runs", "3", "--json", str(tmp_path / "r.json")]
    r = run_cli(*cmd, timeout=600, cwd=tiny_ae_run)
    assert r.returncode == 0, r.stderr[-3000:]
    stored = json.loads((tmp_path / "r.json").read_text())["quality"]["threshold"]
    lines = [ln for ln in r.stderr.splitlines() if "quality gate" in ln]
    assert "threshold 1.00000" not in r.stderr and len(lines) == 1, lines
    m = re.search(r"threshold ([0-9.]+) \(p99 of the int8 reconstruction error of \d+ \w+ faces\)", lines[0])
    assert m and abs(float(m.group(1)) - stored) < 1e-5
