"""Haar and YuNet (the default, shipped) on real photos (../shared/data/images); bad detector models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_fer.detect import DETECTORS, Detector, create_detector
from edge_fer.errors import ConfigError, MissingDependencyError, ModelError
from tests.cli import run_cli


def _inside(box, shape):
    x, y, w, h = box
    return x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= shape[1] and y + h <= shape[0]


@pytest.mark.parametrize("name", ["haar", "yunet"])
def test_detectors_find_faces_on_real_photos(name, face_images, yunet_model):
    det = create_detector(name, model=str(yunet_model) if name == "yunet" else None)
    assert isinstance(det, Detector)
    expected = {"obama": 1, "obama_240p": 1, "two_people": 2}
    for img_name, n in expected.items():
        img = cv2.imread(str(face_images[img_name]))
        faces = det.detect(img)
        assert len(faces) == n, (name, img_name, faces)
        assert all(_inside(f.box, img.shape) for f in faces)
        # works on the gray image too (picamera2 Y plane)
        assert len(det.detect(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))) == n
    if name == "yunet":
        assert faces[0].landmarks.shape == (5, 2)


def test_haar_boxes_are_in_full_frame_pixels(face_images):
    img = cv2.imread(str(face_images["obama"]))
    full = create_detector("haar", scale=1.0).detect(img)[0].box
    half = create_detector("haar", scale=0.5).detect(img)[0].box
    cx = lambda b: (b[0] + b[2] / 2, b[1] + b[3] / 2)  # noqa: E731
    assert np.hypot(*np.subtract(cx(full), cx(half))) < 0.15 * full[2]


def test_no_faces_in_a_blank_frame():
    assert create_detector("haar").detect(np.zeros((240, 320, 3), np.uint8)) == []


def test_detector_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown detector"):
        create_detector("mtcnn")
    with pytest.raises(ModelError, match="(?i)no such file"):
        create_detector("yunet", model=str(tmp_path / "none.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    with pytest.raises(ModelError):
        create_detector("yunet", model=str(bad))
    with pytest.raises(ConfigError, match=r"detector\.scale' must be in \[0\.05, 1\]"):  # the schema's range, once
        create_detector("haar", scale=2.0)
    with pytest.raises(TypeError):  # an option no detector knows is refused, not swallowed
        create_detector("haar", scale_factr=1.2)


def test_every_registered_detector_builds_from_the_config_section(yunet_model):
    from edge_fer.config import DetectorConfig
    from edge_fer.detect import build_detector
    from edge_fer.detect.roi import RoiDetector

    blank = np.zeros((240, 320, 3), np.uint8)
    for name in DETECTORS:
        cfg = DetectorConfig(name=name)  # no model: YuNet's shipped one, OpenCV's cascade
        det = build_detector(cfg)
        assert isinstance(det, RoiDetector) and det.full_every == cfg.full_every  # window search on by default
        assert isinstance(det.inner, Detector) and det.inner.name in ("haar", "yunet")
        assert det.detect(blank) == []
        assert not isinstance(build_detector(cfg, windows=False), RoiDetector)


def test_opencv_without_haar_names_the_real_fix(monkeypatch):
    """OpenCV 5 has no CascadeClassifier: the error names the pip pin, not a nonexistent extra."""
    from edge_fer.detect import haar

    monkeypatch.delattr(haar.cv2, "CascadeClassifier")
    with pytest.raises(MissingDependencyError, match=r"opencv-python-headless>=4.8,<5") as e:
        haar.HaarDetector()
    assert "edge-fer[" not in str(e.value)


def test_yunet_crops_are_framed_like_the_models_training_faces(face_images, yunet_model, tmp_path):
    """YuNet's boxes are tall and ~9% longer than Haar's squares, so cutting the crop around the raw
    box zoomed the face out (-4.5 points on PublicTest, benchmarks/crop_margin.py). The runtime crops
    around :meth:`Detector.crop_box`: a square of ``framing`` x the box's longer side on the same
    centre; the events keep the detector's own box. Checked on what `edge-fer run --save-crops` wrote."""
    import json

    from edge_fer.classify import Classifier
    from edge_fer.preprocess import face_crops

    det = create_detector("yunet", model=str(yunet_model), scale=1.0)
    gray = cv2.imread(str(face_images["obama"]), cv2.IMREAD_GRAYSCALE)
    (face,) = det.detect(cv2.imread(str(face_images["obama"])))
    x, y, w, h = face.box
    cx, cy, cw, ch = det.crop_box(face.box)
    assert cw == ch == round(max(w, h) * det.framing) < max(w, h)
    assert abs((cx + cw / 2) - (x + w / 2)) <= 1 and abs((cy + ch / 2) - (y + h / 2)) <= 1
    assert create_detector("haar").crop_box(face.box) == face.box  # Haar's framing is the reference

    out, crops = tmp_path / "e.jsonl", tmp_path / "crops"
    cmd = ["run", "--source", str(face_images["obama"]), "-o", str(out)]
    cmd += ["--detector", "yunet", "--detector-model", str(yunet_model), "--detect-scale", "1.0"]
    cmd += ["--full-every", "0", "--save-crops", str(crops)]
    r = run_cli(*cmd)
    assert r.returncode == 0, r.stderr[-2000:]
    (saved,) = sorted(crops.glob("*.png"))
    pre = Classifier.from_file(None).preprocessing  # the shipped bundle's, which `run` used
    want = face_crops(gray, [det.crop_box(face.box)], pre, 48, 48)[0]
    raw = face_crops(gray, [face.box], pre, 48, 48)[0]
    got = cv2.imread(str(saved), cv2.IMREAD_GRAYSCALE)
    assert np.abs(got.astype(int) - want).mean() < 1.0 < np.abs(got.astype(int) - raw).mean()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    boxes = [e["box"] for e in events if "box" in e]
    assert boxes and all(list(b) == list(face.box) for b in boxes)  # events keep the detector's box


def test_the_default_detector_is_yunet_with_the_shipped_model_and_nothing_pulled():
    """No flag, no path, no download: the default is YuNet on the release file inside the package
    (the test's model cache is empty, tests/conftest.py)."""
    from edge_fer.config import Config
    from edge_fer.detect import build_detector
    from edge_fer.models import YUNET_SHA256, shipped_yunet
    from edge_fer.models_store import installed_path, sha256_file

    assert installed_path("yunet") is None
    det = build_detector(Config().detector)
    assert det.inner.name == "yunet" and det.inner.model_path == str(shipped_yunet())
    assert sha256_file(shipped_yunet()) == YUNET_SHA256


def test_a_pulled_yunet_is_preferred_to_the_shipped_one(other_yunet_model):
    """`edge-fer models pull yunet` stays the way to update the detector: a copy in the cache wins."""
    import shutil

    from edge_fer import models_store
    from edge_fer.detect.yunet import default_model

    dest = models_store.models_dir() / models_store.spec("yunet").filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(other_yunet_model, dest)
    assert default_model() == (dest, "pulled")
    assert create_detector("yunet").model_path == str(dest)


def test_without_face_detector_yn_the_default_falls_back_to_haar_in_one_log_line(monkeypatch, caplog):
    from edge_fer.config import Config
    from edge_fer.detect import build_detector, yunet

    monkeypatch.delattr(yunet.cv2, "FaceDetectorYN")
    with caplog.at_level("WARNING"):
        det = build_detector(Config().detector)
    assert det.inner.name == "haar"
    lines = [r.getMessage() for r in caplog.records if "FaceDetectorYN" in r.getMessage()]
    assert len(lines) == 1 and "Haar" in lines[0]
    # asked for by name with a model file, YuNet cannot fall back silently: the fix is named
    with pytest.raises(MissingDependencyError, match="FaceDetectorYN"):
        create_detector("yunet", model=str(yunet.default_model()[0]))


def test_yunet_boxes_on_a_small_frame_are_not_halved(face_images):
    """--detect-scale never takes a frame's longer side below 320 px for YuNet: obama_240p (427 px wide)
    is detected at 320 px, not at 213, and a 320 px frame at its own size."""
    img = cv2.imread(str(face_images["obama_240p"]))
    half, full = create_detector("yunet", scale=0.5), create_detector("yunet", scale=1.0)
    assert len(half.detect(img)) == 1  # found at 320 x 180
    small = cv2.resize(img, (320, 180), interpolation=cv2.INTER_AREA)  # a face about 40 px tall
    assert [f.box for f in half.detect(small)] == [f.box for f in full.detect(small)] != []


def test_no_import_circle_between_the_config_and_the_detectors():
    """edge_fer.config takes DetectorConfig (and the registry's names) from edge_fer.detect.options; no
    detector module imports edge_fer.config back, not even inside a function or for type checking."""
    import ast
    from pathlib import Path

    import edge_fer.config
    import edge_fer.detect

    assert edge_fer.config.DetectorConfig is edge_fer.detect.DetectorConfig
    for path in Path(edge_fer.detect.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n == "edge_fer.config" or n.startswith("edge_fer.config.") for n in names), path.name
            assert not (
                isinstance(node, ast.ImportFrom)
                and node.module == "edge_fer"
                and any(a.name == "config" for a in node.names)
            ), path.name


def test_window_shrink_matches_an_area_resize(face_images):
    """The window search's resize (whole-factor area average, then bilinear) gives the sizes asked
    for and nearly the pixels of ``cv2.INTER_AREA``, which it replaces because it is several times
    slower on factors that are not whole numbers; a whole factor is the area resize exactly."""
    import cv2

    from edge_fer.detect.yunet import shrink

    img = cv2.imread(str(face_images["obama"]))
    for w, h in ((191, 191), (191, 150), (64, 64), (40, 64), (300, 97)):
        crop = img[100 : 100 + h, 300 : 300 + w]
        for size in ((64, 64), (64, 50), (33, 64)):
            out = shrink(crop, *size)
            assert out.shape == (size[1], size[0], 3)
            ref = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            assert np.abs(out.astype(int) - ref.astype(int)).mean() < 6, (w, h, size)
    whole = img[:192, :192]
    assert np.array_equal(shrink(whole, 64, 64), cv2.resize(whole, (64, 64), interpolation=cv2.INTER_AREA))
