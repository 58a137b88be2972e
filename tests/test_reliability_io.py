"""Reliability of the runtime's inputs and outputs (issue 9), through the installed ``edge-fer``
command in a subprocess, on real files and real video decoding:

* a restart appends to the events file (``--overwrite`` truncates); a half-written last line does not
  corrupt the next run's first line; CSV gets one header;
* a full disk / a file-size limit: every failed write counted, logged (rate-limited), reported, and a
  sink that cannot write ends the run with exit code 74; only whole lines in the file;
* a damaged video is read past its bad frames (skipped, counted, reported); a source that yields
  nothing exits 2;
* SIGHUP finishes like SIGTERM (face_left written); a closed stdout pipe stops a looping run.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cli import popen_cli, run_cli
from tests.conftest import shared_file

TIMEOUT = 120


def edge_fer(*args: str | Path, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, timeout=TIMEOUT, **kw)


def assert_one_clean_error(proc: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """Exit ``code``, exactly one ``edge-fer: error:`` line naming ``words``, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("edge-fer: error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines()]


def frames_processed(stderr: str) -> int:
    m = re.search(r"stopped after (\d+) frames", stderr)
    assert m, stderr[-2000:]
    return int(m.group(1))


@pytest.fixture
def obama() -> Path:
    return shared_file("images/obama.jpg")


# --- 1. a restart never erases earlier output --------------------------------------------------------


def test_restart_appends_to_the_events_file(tmp_path, obama, hamilton_clip):
    out = tmp_path / "events.jsonl"
    first = edge_fer("run", "--source", obama, "-o", out, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = out.read_text()
    assert len(jsonl(out)) == 2  # face_appeared + face_left
    # the case: a short second run (no events) used to leave an empty file; YuNet (the default)
    # finds the clip's faces on frame 0, and a face needs two detections to appear: one frame, no event
    again = edge_fer("run", "--source", hamilton_clip, "--max-frames", "1", "-o", out, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert out.read_text() == before
    third = edge_fer("run", "--source", obama, "-o", out, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    events = jsonl(out)
    assert [e["type"] for e in events] == ["face_appeared", "face_left"] * 2
    assert out.read_text().startswith(before)


def test_overwrite_truncates_the_events_file(tmp_path, obama):
    out = tmp_path / "events.jsonl"
    out.write_text('{"type":"old"}\n')
    proc = edge_fer("run", "--source", obama, "-o", out, "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [e["type"] for e in jsonl(out)] == ["face_appeared", "face_left"]
    # the same from a config file ([output] overwrite = true)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[source]\nuri = "{obama}"\n[output]\npath = "{out}"\noverwrite = true\n')
    proc = edge_fer("run", "--config", cfg, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(jsonl(out)) == 2


def test_half_written_last_line_does_not_corrupt_the_next_run(tmp_path, obama):
    out = tmp_path / "events.jsonl"
    torn = '{"type":"face_left","ts":1.0,"fra'  # a crash in the middle of a line
    out.write_text('{"type":"face_appeared","ts":0.5}\n' + torn)
    proc = edge_fer("run", "--source", obama, "-o", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "unfinished" in proc.stderr
    lines = out.read_text().splitlines()
    assert lines[:2] == ['{"type":"face_appeared","ts":0.5}', torn]  # history kept as it was
    assert [json.loads(ln)["type"] for ln in lines[2:]] == ["face_appeared", "face_left"]


def test_csv_is_appended_with_one_header(tmp_path, obama):
    out = tmp_path / "events.csv"
    for _ in range(2):
        proc = edge_fer("run", "--source", obama, "--format", "csv", "-o", out, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    rows = out.read_text().splitlines()
    assert rows[0].startswith("type,ts,frame,track_id,label")
    assert sum(r.startswith("type,") for r in rows) == 1
    assert [r.split(",")[0] for r in rows[1:]] == ["face_appeared", "face_left"] * 2


def test_csv_append_to_a_file_with_other_columns_is_refused(tmp_path, obama):
    out = tmp_path / "events.csv"
    out.write_text('{"type":"face_appeared"}\n')
    proc = edge_fer("run", "--source", obama, "--format", "csv", "-o", out, cwd=tmp_path)
    assert_one_clean_error(proc, 2, str(out), "--overwrite")
    assert out.read_text() == '{"type":"face_appeared"}\n'


def test_json_lines_appended_to_a_csv_file_are_refused(tmp_path, obama):
    out = tmp_path / "events.csv"
    assert edge_fer("run", "--source", obama, "--format", "csv", "-o", out, cwd=tmp_path).returncode == 0
    before = out.read_text()
    proc = edge_fer("run", "--source", obama, "-o", out, cwd=tmp_path)  # the default format, jsonl
    assert_one_clean_error(proc, 2, str(out), "not JSON lines", "--overwrite")
    assert out.read_text() == before


def test_restart_keeps_the_annotated_video_and_the_crops(tmp_path, obama):
    video, crops = tmp_path / "ann.mp4", tmp_path / "crops"
    for _ in range(2):
        proc = edge_fer(
            "run",
            "--source",
            obama,
            "-o",
            tmp_path / "ev.jsonl",
            "--annotate",
            video,
            "--save-crops",
            crops,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    first = video.read_bytes()
    assert first and (tmp_path / "ann.1.mp4").stat().st_size > 0  # the second run did not replace the first
    assert len(list(crops.glob("*.png"))) == 2  # one face per run, both kept
    proc = edge_fer(
        "run", "--source", obama, "-o", tmp_path / "ev.jsonl", "--annotate", video, "--overwrite", cwd=tmp_path
    )
    assert proc.returncode == 0 and not (tmp_path / "ann.2.mp4").exists()


# --- 2. a full disk is said, counted, and ends the run -----------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_full_disk_ends_the_run_with_exit_74_and_counts(tmp_path, hamilton_clip):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[run]\nstatus_interval_s = 0.001\n")  # a status line every frame
    proc = edge_fer(
        "run",
        "--config",
        cfg,
        "--source",
        hamilton_clip,
        "--per-frame",
        "--max-frames",
        "200",
        "-o",
        "/dev/full",
        cwd=tmp_path,
    )
    line = assert_one_clean_error(proc, 74, "/dev/full", "No space left on device", "dropped")
    dropped = int(re.search(r"(\d+) event\(s\) dropped", line).group(1))
    assert dropped >= 10
    assert frames_processed(proc.stderr) < 200  # it stopped, it did not write into the void
    # rate-limited: one warning for the first failure, then the give-up line; not one per event
    assert proc.stderr.count("write failed") == 1, proc.stderr[-3000:]
    assert "giving up" in proc.stderr
    # the status lines show the events waiting for a retry and, at the end, those dropped
    assert re.search(r"[1-9]\d* events waiting", proc.stderr), proc.stderr[-3000:]
    assert re.search(r"stopped after \d+ frames .*[1-9]\d* events dropped", proc.stderr), proc.stderr[-3000:]


def _limit_file_size(nbytes: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.RLIM_INFINITY))

    return preexec


def test_disk_filling_up_mid_run_leaves_only_whole_lines(tmp_path, hamilton_clip, obama):
    out = tmp_path / "events.jsonl"
    proc = edge_fer(
        "run",
        "--source",
        hamilton_clip,
        "--per-frame",
        "--max-frames",
        "150",
        "-o",
        out,
        cwd=tmp_path,
        preexec_fn=_limit_file_size(3000),
    )
    assert_one_clean_error(proc, 74, str(out), "File too large")
    events = jsonl(out)  # every line parses: the cut-off line was removed
    assert 0 < len(events) and out.stat().st_size <= 3000
    # the next run (with room again) appends after the whole lines
    proc = edge_fer("run", "--source", obama, "-o", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert jsonl(out)[: len(events)] == events and len(jsonl(out)) == len(events) + 2


def test_failed_writes_are_retried_counted_and_exported_in_metrics(tmp_path):
    """A write that fails (a file-size limit, lifted later) keeps the lines for a retry; ``sent`` is
    what reached the file; errors, queued and dropped show in the HTTP sink's /metrics."""
    script = r"""
import json, logging, resource, sys, urllib.request
from edge_fer.config import HttpConfig, OutputConfig
from edge_fer.sinks.http import HttpSink
from edge_fer.sinks.jsonl import JsonlSink
from edge_fer.types import Event

logging.basicConfig(level=logging.INFO)
path = sys.argv[1]
sink = JsonlSink(OutputConfig(path=path))
http = HttpSink(HttpConfig(port=0))
http.set_sinks([sink, http])
metrics = lambda: urllib.request.urlopen(http.url + "/metrics", timeout=10).read().decode()
ev = lambda i: Event(type="face", ts=float(i), frame=i, track_id=1, label="happy", scores={"happy": 1.0}, box=(1, 2, 3, 4))
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))  # "disk full"
for i in range(3):
    sink.emit(ev(i)); sink.flush()
full = (sink.stats().to_dict(), metrics())
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again
sink.emit(ev(3)); sink.flush()
again = (sink.stats().to_dict(), metrics())
resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
for i in range(4, 4 + sink.max_consecutive_errors):
    sink.emit(ev(i)); sink.flush()
gone = (sink.stats().to_dict(), metrics(), sink.failed)
http.close(); sink.close()
print(json.dumps([full, again, gone]))
"""
    out = tmp_path / "events.jsonl"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    full, again, gone = json.loads(proc.stdout.splitlines()[-1])
    assert full[0] == {"sent": 0, "dropped": 0, "errors": 3, "queued": 3}
    assert 'edge_fer_sink_errors_total{sink="jsonl"} 3' in full[1]
    assert 'edge_fer_sink_queued{sink="jsonl"} 3' in full[1]
    assert again[0] == {"sent": 4, "dropped": 0, "errors": 3, "queued": 0}  # nothing lost
    assert [e["frame"] for e in jsonl(out)] == [0, 1, 2, 3]
    stats, text, failed = gone
    assert failed and "File too large" in failed
    assert stats["dropped"] == stats["errors"] - 3 == 10 and stats["queued"] == 0
    assert 'edge_fer_sink_dropped_total{sink="jsonl"} 10' in text
    assert 'edge_fer_sink_sent_total{sink="jsonl"} 4' in text
    assert proc.stderr.count("write failed") == 2  # the first failure of each streak, not one per write
    assert "writing again" in proc.stderr and "giving up" in proc.stderr


# --- 3. damaged input: skip and count bad frames; nothing at all is an error ------------------------


def _damaged_mp4(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    o = len(data) // 5  # about frame 50 of 275
    data[o : o + 5000] = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def _mjpg_avi(src: Path, dst: Path, frames: int = 100) -> Path:
    import cv2

    cap = cv2.VideoCapture(str(src))
    w = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (640, 360))
    for _ in range(frames):
        ok, img = cap.read()
        assert ok
        w.write(img)
    w.release()
    cap.release()
    return dst


def _damage_avi_frames(path: Path, which: list[int]) -> None:
    """Zero the first bytes (the JPEG start) of the chosen frames' chunks: they cannot be decoded."""
    data = bytearray(path.read_bytes())
    movi, idx1 = data.find(b"movi"), data.rfind(b"idx1")  # the frames' chunks lie between these
    chunks = [movi + m.start() for m in re.finditer(rb"00dc", bytes(data[movi:idx1]))]
    for i in which:
        o = chunks[i] + 8
        data[o : o + 2000] = bytes(2000)
    path.write_bytes(bytes(data))


def test_damaged_mp4_is_read_past_the_bad_frames(tmp_path, hamilton_clip):
    bad = _damaged_mp4(hamilton_clip, tmp_path / "damaged.mp4")
    proc = edge_fer("run", "--source", bad, "--max-frames", "100", "-o", tmp_path / "ev.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert frames_processed(proc.stderr) == 100  # it used to stop silently at frame 50
    m = re.search(r"(\d+) unreadable frame\(s\) skipped", proc.stderr)
    assert m and int(m.group(1)) >= 1, proc.stderr[-2000:]
    assert "unreadable frames skipped" in proc.stderr  # in the final status line too


def test_damaged_avi_is_read_past_the_bad_frame_and_reported(tmp_path, hamilton_clip):
    avi = _mjpg_avi(hamilton_clip, tmp_path / "clip.avi")
    _damage_avi_frames(avi, [30])
    proc = edge_fer("run", "--source", avi, "--detect-every", "10", "-o", tmp_path / "ev.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert frames_processed(proc.stderr) == 99  # it used to stop at 30
    assert "1 unreadable frame(s) skipped, 99 decoded" in proc.stderr


def test_truncated_avi_says_where_it_ended(tmp_path, hamilton_clip):
    avi = _mjpg_avi(hamilton_clip, tmp_path / "clip.avi")
    data = avi.read_bytes()
    avi.write_bytes(data[: len(data) // 2])
    proc = edge_fer("run", "--source", avi, "--detect-every", "10", "-o", tmp_path / "ev.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n = frames_processed(proc.stderr)
    assert 30 < n < 100
    assert f"ended after {n} of the 100" in proc.stderr


def test_video_without_a_decodable_frame_exits_2(tmp_path, hamilton_clip):
    avi = _mjpg_avi(hamilton_clip, tmp_path / "clip.avi", frames=20)
    _damage_avi_frames(avi, list(range(20)))
    proc = edge_fer("run", "--source", avi, "-o", tmp_path / "ev.jsonl", cwd=tmp_path)
    assert_one_clean_error(proc, 2, str(avi), "no frame could be read")


def test_unreadable_image_source_exits_2(tmp_path):
    img = tmp_path / "broken.jpg"
    img.write_bytes(b"\xff\xd8 this is not a jpeg" * 10)
    proc = edge_fer("run", "--source", img, cwd=tmp_path)
    assert_one_clean_error(proc, 2, "broken.jpg", "no frame could be read")
    assert proc.stdout == ""


def test_one_unreadable_image_in_a_folder_is_skipped_and_counted(tmp_path, obama):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(obama, folder / "a.jpg")
    (folder / "b.jpg").write_bytes(b"not an image")
    proc = edge_fer("run", "--source", folder, "-o", tmp_path / "ev.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cannot read image" in proc.stderr and "b.jpg" in proc.stderr
    assert len(jsonl(tmp_path / "ev.jsonl")) == 2


# --- 12. SIGHUP and a closed pipe ------------------------------------------------------------------


def _wait_for(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_sighup_finishes_like_sigterm(tmp_path, hamilton_clip):
    out = tmp_path / "events.jsonl"
    p = popen_cli(
        "run",
        "--source",
        hamilton_clip,
        "--loop",
        "-o",
        out,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # as started from a terminal or systemd: under `nohup pytest` the child would inherit an ignored
        # SIGHUP, which the daemon deliberately keeps ignoring (it was started to outlive the terminal)
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )
    try:
        assert _wait_for(lambda: out.exists() and "face_appeared" in out.read_text(), 60), "no face seen"
        p.send_signal(signal.SIGHUP)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err[-2000:]
    assert "on SIGHUP" in err
    types = [e["type"] for e in jsonl(out)]
    assert types[-1] == "face_left" and types.count("face_left") == types.count("face_appeared")


def test_closed_stdout_pipe_stops_a_looping_run(tmp_path, hamilton_clip):
    p = popen_cli(
        "run",
        "--source",
        hamilton_clip,
        "--loop",
        "--per-frame",
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        lines = [p.stdout.readline() for _ in range(3)]  # like `| head -3`
        assert all(ln.startswith(b"{") for ln in lines)
        p.stdout.close()
        _, err = p.communicate(timeout=30)  # it used to run forever
        err = err.decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 74, err[-2000:]
    assert "Traceback" not in err and "Exception ignored" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("edge-fer: error:")]
    assert len(errors) == 1 and "stdout" in errors[0] and "Broken pipe" in errors[0], err[-2000:]
