"""Haar and YuNet on real photos (../shared/data/images)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_fer.detect import DETECTORS, Detector, create_detector
from edge_fer.errors import ConfigError, MissingDependencyError, ModelError


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
    with pytest.raises(ConfigError, match="detector-model"):
        create_detector("yunet")
    with pytest.raises(ModelError, match="not found"):
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
        cfg = DetectorConfig(name=name, model=str(yunet_model) if name == "yunet" else "")
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
