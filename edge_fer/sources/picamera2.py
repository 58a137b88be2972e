"""Raspberry Pi camera through picamera2 (apt ``python3-picamera2``; a venv needs system site packages).

A low-resolution ``YUV420`` stream is configured; its Y plane is already the grayscale image the
detector and classifier need, so no colour conversion happens on the Pi. Each frame is taken with
``capture_request()`` (the freshest buffer), copied, and the request released at once; the sensor
timestamp (``SensorTimestamp``, ns, CLOCK_MONOTONIC/BOOTTIME) is kept as ``Frame.source_ts`` for
latency. Latest-frame semantics, drop counting and reopen-with-back-off come from
:class:`~edge_fer.sources.live.LiveSource`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_fer.errors import MissingDependencyError, SourceError
from edge_fer.sources.live import LiveSource


def _import_picamera2():
    try:
        from picamera2 import Picamera2
    except ImportError:
        raise MissingDependencyError(
            "--source picamera2 needs the picamera2 package (not on PyPI for the Pi's camera stack)",
            "on Raspberry Pi OS, sudo apt install python3-picamera2 and a venv made with --system-site-packages "
            "(deploy/install-pi.sh does both)",
        ) from None
    return Picamera2


class _Picam2Capture:
    def __init__(self, camera_num: int, size: tuple[int, int], fps: float):
        Picamera2 = _import_picamera2()
        w, h = (int(size[0]) // 2) * 2, (int(size[1]) // 2) * 2
        self.size = (w, h)
        try:
            self.cam = Picamera2(camera_num)
        except Exception as e:
            raise SourceError(f"picamera2 cannot open camera {camera_num}: {e}") from None
        try:
            controls = {"FrameRate": float(fps)} if fps else {}
            # main must be at least as large as lores; we only ever read lores.
            config = self.cam.create_video_configuration(
                main={"size": (max(w, 640), max(h, 480)), "format": "YUV420"},
                lores={"size": (w, h), "format": "YUV420"},
                buffer_count=3,
                controls=controls,
            )
            self.cam.configure(config)
            self.cam.start()
        except Exception as e:
            self.close()
            raise SourceError(f"picamera2 cannot start camera {camera_num}: {e}") from None

    def grab(self) -> tuple[np.ndarray, float | None, np.ndarray | None]:
        req = self.cam.capture_request()
        try:
            yuv = req.make_array("lores")
            md = req.get_metadata()
        finally:
            req.release()
        w, h = self.size
        y = np.ascontiguousarray(yuv[:h, :w])  # Y plane (rows beyond h hold U and V); drop stride padding
        ts_ns = md.get("SensorTimestamp") if isinstance(md, dict) else None
        return y, (ts_ns / 1e9 if ts_ns else None), y

    def close(self) -> None:
        cam = getattr(self, "cam", None)
        if cam is None:
            return
        try:
            cam.stop()
        finally:
            cam.close()


class Picamera2Source(LiveSource):
    def __init__(self, camera_num: int = 0, size: tuple[int, int] = (640, 480), fps: float = 0.0, **kw: Any):
        _import_picamera2()  # fail fast with the install hint
        super().__init__(f"picamera2:{camera_num}", lambda: _Picam2Capture(camera_num, size, fps), **kw)
