"""The picamera2 adapter against a fake ``picamera2`` module with the same API."""

from __future__ import annotations

import sys
import time
import types

import numpy as np
import pytest

from edge_fer.errors import MissingDependencyError


class FakeRequest:
    def __init__(self, cam, n):
        self.cam, self.n = cam, n
        self.released = False

    def make_array(self, name):
        assert name == "lores"
        w, h = self.cam.config["lores"]["size"]
        stride = w + 32  # padded rows, as real YUV420 buffers have
        yuv = np.zeros((h * 3 // 2, stride), np.uint8)
        scene = self.cam.scene
        yuv[:h, :w] = self.n % 256 if scene is None else scene[:h, :w]  # Y
        yuv[h:, :] = 99  # U, V
        return yuv

    def get_metadata(self):
        return {"SensorTimestamp": 1_000_000_000 + self.n * 33_000_000, "ExposureTime": 10000}

    def release(self):
        self.released = True
        self.cam.outstanding -= 1


class FakePicamera2:
    instances: list = []
    fail_on_capture_after: int | None = None
    scene: np.ndarray | None = None  # what the sensor sees (gray); None: uniform frames

    def __init__(self, camera_num=0):
        self.camera_num = camera_num
        self.started = self.closed = False
        self.config = None
        self.n = 0
        self.outstanding = 0
        self.requests = []
        # only the first camera instance fails (the reopened one works)
        self.fail_after = FakePicamera2.fail_on_capture_after if not FakePicamera2.instances else None
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main=None, lores=None, buffer_count=6, controls=None, **kw):
        return {"main": main, "lores": lores, "buffer_count": buffer_count, "controls": controls or {}}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def capture_request(self):
        assert self.started
        time.sleep(0.002)
        if self.fail_after is not None and self.n >= self.fail_after:
            raise RuntimeError("camera timeout")
        self.n += 1
        self.outstanding += 1
        r = FakeRequest(self, self.n)
        self.requests.append(r)
        return r

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch):
    mod = types.ModuleType("picamera2")
    mod.Picamera2 = FakePicamera2
    FakePicamera2.instances = []
    FakePicamera2.fail_on_capture_after = None
    FakePicamera2.scene = None
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    return FakePicamera2


def _read(src, n, timeout=3.0):
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        f = src.read(timeout=0.5)
        if f is not None:
            out.append(f)
    return out


def test_y_plane_gray_sensor_timestamp_and_release(fake_picamera2):
    from edge_fer.sources import open_source

    src = open_source("picamera2", width=320, height=240, fps=15)
    src.open()
    frames = _read(src, 5)
    src.close()
    cam = fake_picamera2.instances[0]
    assert cam.config["lores"] == {"size": (320, 240), "format": "YUV420"}
    assert cam.config["controls"] == {"FrameRate": 15.0}
    assert len(frames) == 5
    for f in frames:
        assert f.image.shape == (240, 320) and f.image.dtype == np.uint8
        assert f.gray is f.image and f.image.flags["C_CONTIGUOUS"]
        assert 99 not in np.unique(f.image)  # no U/V rows, no stride padding
        assert f.source_ts is not None and f.source_ts > 1.0
    assert all(r.released for r in cam.requests) and cam.outstanding == 0
    assert cam.closed and not cam.started


def test_camera_failure_is_reopened(fake_picamera2):
    from edge_fer.sources.picamera2 import Picamera2Source

    fake_picamera2.fail_on_capture_after = 3
    src = Picamera2Source(size=(64, 48), backoff_initial=0.01, backoff_max=0.02)
    src.open()
    frames = _read(src, 6)
    src.close()
    assert len(frames) == 6
    assert src.stats()["reopens"] >= 1 and src.stats()["errors"] >= 1
    assert len(fake_picamera2.instances) >= 2 and fake_picamera2.instances[0].closed


def test_pipeline_runs_on_picamera2_frames(fake_picamera2, tiny_bundle, face_images):
    """A real face seen by the camera (its Y plane, with stride padding and U/V rows) goes through
    detect -> classify -> track without a colour conversion: every frame finds the face, the tracker
    opens one track and labels it, and the events carry the face's box."""
    import cv2

    from edge_fer.classify import Classifier
    from edge_fer.detect import create_detector
    from edge_fer.labels import LABELS
    from edge_fer.pipeline import Pipeline
    from edge_fer.sources.picamera2 import Picamera2Source
    from edge_fer.track import Tracker
    from tests.test_pipeline import ListSink

    photo = cv2.imread(str(face_images["obama_240p"]), cv2.IMREAD_GRAYSCALE)  # 427x240, one face
    fake_picamera2.scene = np.ascontiguousarray(photo[:, 53:373])  # the middle 320x240
    sink = ListSink()
    pipe = Pipeline(
        Picamera2Source(size=(320, 240)), create_detector("haar"), Classifier.from_file(tiny_bundle), Tracker(), [sink]
    )
    pipe.open()
    n = 0
    while n < 8:
        if pipe.step(timeout=1.0):
            n += 1
    pipe.close()
    st = pipe.status()
    assert st.frames == 8 and st.faces == 8  # one face in every frame
    appeared = [e for e in sink.events if e["type"] == "face_appeared"]
    assert len(appeared) == 1 and appeared[0]["label"] in LABELS
    x, y, w, h = appeared[0]["box"]
    assert 110 <= x + w / 2 <= 230 and 20 <= y + h / 2 <= 90 and w >= 40  # the face, around (169, 53)
    assert {e["track_id"] for e in sink.events if "track_id" in e} == {appeared[0]["track_id"]}


def test_missing_picamera2_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    from edge_fer.sources import open_source

    with pytest.raises(MissingDependencyError, match="apt install python3-picamera2") as e:
        open_source("picamera2")
    assert "edge-fer[" not in str(e.value)  # no extra provides picamera2: never point at one
