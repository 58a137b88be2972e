"""Frame sources: dispatch, video files (every frame), images, live latest-frame semantics, reopen."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge_fer.errors import SourceError
from edge_fer.sources import SourceMode, open_source
from edge_fer.sources.images import ImageSource
from edge_fer.sources.live import LiveSource
from edge_fer.sources.opencv import OpenCVCameraSource, VideoFileSource


def test_dispatch(tmp_path, hamilton_clip, face_images):
    assert isinstance(open_source(str(hamilton_clip)), VideoFileSource)
    assert isinstance(open_source(str(face_images["obama"])), ImageSource)
    folder = face_images["obama"].parent
    src = open_source(str(folder))
    assert isinstance(src, ImageSource) and len(src.paths) >= 3
    g = open_source(str(folder / "obama*.jpg"))
    assert isinstance(g, ImageSource) and [p.name for p in g.paths] == ["obama.jpg", "obama_240p.jpg"]
    assert isinstance(open_source("0"), OpenCVCameraSource)
    cam = open_source("rtsp://user:secret@cam.local/stream")
    assert isinstance(cam, OpenCVCameraSource) and "secret" not in cam.name
    assert open_source(str(hamilton_clip)).mode is SourceMode.FILE and src.mode is SourceMode.STILL
    assert cam.mode is SourceMode.LIVE and not cam.wait_at_start
    assert open_source("0", wait=True).wait_at_start  # source.wait reaches the live source
    with pytest.raises(SourceError, match="not a file"):
        open_source(str(tmp_path / "missing.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path / "empty"))


def test_video_file_every_frame_in_order(hamilton_clip):
    src = VideoFileSource(hamilton_clip)
    src.open()
    idx, pos = [], []
    while (f := src.read()) is not None:
        idx.append(f.index)
        pos.append(f.source_ts)
    src.close()
    assert idx == list(range(275))
    assert all(b > a for a, b in zip(pos, pos[1:]))
    assert src.stats()["dropped"] == 0 and src.finished


def test_video_loop(hamilton_clip):
    src = VideoFileSource(hamilton_clip, loop=True)
    src.open()
    n = sum(1 for _ in range(300) if src.read() is not None)
    assert n == 300 and src.stats()["loops"] == 1
    src.close()


def test_not_a_video(tmp_path):
    p = tmp_path / "x.mp4"
    p.write_bytes(b"nope")
    with pytest.raises(SourceError):
        open_source(str(p)).open()


def test_images_skip_unreadable(tmp_path, face_images):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    src = ImageSource([face_images["obama_240p"], bad, face_images["obama"]])
    src.open()
    frames = [src.read(), src.read(), src.read()]
    assert frames[0].image.shape[:2] == (240, 427) and frames[1] is not None and frames[2] is None
    assert src.stats() == {"frames": 2, "dropped": 0, "errors": 1, "reopens": 0}


class FakeCapture:
    """A camera that yields numbered frames and dies after ``fail_after`` of them."""

    opened = 0

    def __init__(self, fail_after: int | None = None, delay: float = 0.002):
        FakeCapture.opened += 1
        self.n = 0
        self.fail_after = fail_after
        self.delay = delay
        self.closed = False

    def grab(self):
        time.sleep(self.delay)
        if self.fail_after is not None and self.n >= self.fail_after:
            raise OSError("camera unplugged")
        self.n += 1
        return np.full((8, 8, 3), self.n % 256, np.uint8), self.n / 100.0, None

    def close(self):
        self.closed = True


def test_live_source_reopens_after_failure(caplog):
    opens = []

    def opener():
        cap = FakeCapture(fail_after=5 if not opens else None)
        opens.append(cap)
        return cap

    src = LiveSource("fake", opener, backoff_initial=0.01, backoff_max=0.05)
    src.open()
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 20 and time.monotonic() < deadline:
        f = src.read(timeout=0.5)
        if f is not None:
            got.append(f)
    src.close()
    st = src.stats()
    assert len(got) == 20
    assert st["reopens"] >= 1 and st["errors"] >= 1
    assert opens[0].closed and opens[-1].closed
    assert [f.index for f in got] == list(range(20))
    assert any("reopen" in r.getMessage() for r in caplog.records)


def test_live_source_keeps_only_latest_and_counts_drops():
    src = LiveSource("fast", lambda: FakeCapture(delay=0.001))
    src.open()
    time.sleep(0.1)
    f1 = src.read(timeout=1)
    time.sleep(0.1)
    f2 = src.read(timeout=1)
    src.close()
    st = src.stats()
    assert st["dropped"] > 10
    assert f2.source_ts - f1.source_ts > 0.1  # fresh frame, not the next queued one
    assert st["frames"] == 2 and st["captured"] >= st["dropped"] + 2


def test_live_source_first_open_failure_is_clear():
    def opener():
        raise OSError("no such device")

    with pytest.raises(SourceError, match="no such device"):
        LiveSource("cam", opener).open()


def test_live_source_can_wait_for_a_camera_that_is_not_there_yet(caplog):
    attempts = []

    def opener():
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("no such device")
        return FakeCapture()

    src = LiveSource("cam", opener, backoff_initial=0.01, backoff_max=0.05, wait_at_start=True)
    src.open()  # does not raise
    frame = src.read(timeout=5)
    src.close()
    assert frame is not None and len(attempts) == 3
    assert src.stats()["errors"] >= 2
    assert any("waiting for it" in r.getMessage() for r in caplog.records)


def test_live_read_times_out_and_close_unblocks():
    src = LiveSource("slow", lambda: FakeCapture(delay=10))
    src.open()
    t = time.monotonic()
    assert src.read(timeout=0.1) is None
    assert time.monotonic() - t < 1
    threading.Timer(0.1, src.close).start()
    assert src.read(timeout=None) is None
