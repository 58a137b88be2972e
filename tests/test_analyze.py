"""`edge-fer analyze` and media time, through the installed command: real video decoding, the shipped
model in a real TFLite interpreter, real files."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli import EDGE_FER

REPO = Path(__file__).resolve().parents[1]
FPS = 29.97  # the shared clip's frame rate (constant)
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([EDGE_FER, *args], capture_output=True, text=True, timeout=timeout)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_video(path: Path, clip: Path, passes: int = 1, fourcc: str = "mp4v") -> Path:
    """The clip played ``passes`` times into one file (benchmarks/video_analysis.py's ``looped``)."""
    spec = importlib.util.spec_from_file_location("video_analysis", REPO / "benchmarks" / "video_analysis.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.looped(clip, passes, path, fourcc)[0]


# -- media time ---------------------------------------------------------------------------------------


def test_run_events_from_a_video_carry_media_time(hamilton_clip):
    r = cli("run", "--source", str(hamilton_clip), "--max-frames", "60")
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in r.stdout.splitlines()]
    assert events and all("ts" in e and "media_time_s" in e for e in events)
    for e in events:  # the frame's presentation time: frame / fps on this constant-rate clip
        assert e["media_time_s"] == pytest.approx(e["frame"] / FPS, abs=1e-3)
    appeared = {e["track_id"]: e for e in events if e["type"] == "face_appeared"}
    left = [e for e in events if e["type"] == "face_left"]
    assert left, "the clip's first face leaves before frame 60"
    for e in left:
        # duration from the first to the last detection, in media time, not the wall clock
        assert e["duration_s"] == pytest.approx(e["media_end_s"] - e["media_start_s"], abs=2e-3)
        a = appeared[e["track_id"]]
        assert e["media_start_s"] <= a["media_time_s"] <= e["media_end_s"] <= e["media_time_s"]
        # the first track: face_appeared at frame 13, face_left at frame 35, 22 frames = 0.73 s of video
        span = e["media_time_s"] - a["media_time_s"]
        assert span == pytest.approx((e["frame"] - a["frame"]) / FPS, abs=1e-3)
    first = min(left, key=lambda e: e["frame"])
    assert first["frame"] - appeared[first["track_id"]]["frame"] >= 15  # left after max_missed frames unseen
    assert first["duration_s"] > 0.1  # several detections, 1/30 s apart in the video


VFR_PTS_MS = (0, 33, 67, 100, 1100, 1133, 1167, 3000, 3033, 3067)  # two pauses in the recording


def write_vfr_video(path: Path, photo: Path) -> Path:
    """An H.264 MP4 whose frames carry the presentation times ``VFR_PTS_MS`` (a variable frame rate,
    as phones and screen recorders write), each frame a shared photo with one face. Written with
    PyAV (FFmpeg's muxer): OpenCV's writer can only write a constant rate."""
    import fractions

    import av

    face = cv2.resize(cv2.imread(str(photo)), (256, 320))
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[20:340, 192:448] = face
    ms = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.codec_context.time_base = ms
        for pts in VFR_PTS_MS:
            vf = av.VideoFrame.from_ndarray(frame, format="bgr24")
            vf.pts, vf.time_base = pts, ms
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_variable_frame_rate_video_gets_its_presentation_times(tmp_path, face_images):
    """Media time is each frame's presentation timestamp, not frame / nominal fps: on a real
    variable-frame-rate file the events, the timeline and the track table follow the pauses."""
    video = write_vfr_video(tmp_path / "vfr.mp4", face_images["obama"])
    want = [t / 1000 for t in VFR_PTS_MS]

    r = cli("run", "--source", str(video))
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in r.stdout.splitlines()]
    assert events and all(e["media_time_s"] == pytest.approx(want[e["frame"]], abs=1e-3) for e in events)
    left = [e for e in events if e["type"] == "face_left"]
    assert len(left) == 1 and left[0]["duration_s"] == pytest.approx(3.067, abs=1e-3)

    out = tmp_path / "out"
    r = cli("analyze", str(video), "-o", str(out))
    assert r.returncode == 0, r.stderr
    timeline = rows(out / "vfr" / "timeline.csv")
    assert [float(t["media_time_s"]) for t in timeline] == pytest.approx(want, abs=1e-3)
    (track,) = rows(out / "vfr" / "tracks.csv")
    assert float(track["start_s"]) == 0.0 and float(track["end_s"]) == pytest.approx(3.067, abs=1e-3)
    assert int(track["frames"]) == len(VFR_PTS_MS)


def test_still_images_have_no_media_time(face_images):
    r = cli("run", "--source", str(face_images["two_people"]))
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in r.stdout.splitlines()]
    assert events and not any("media_time_s" in e or "media_start_s" in e for e in events)


# -- analyze ------------------------------------------------------------------------------------------


def test_analyze_writes_timeline_tracks_summary_plot_index(tmp_path, hamilton_clip):
    out = tmp_path / "out"
    r = cli("analyze", str(hamilton_clip), "-o", str(out), "--max-seconds", "4")
    assert r.returncode == 0, r.stderr
    folder = out / "hamilton_clip"
    tl = rows(folder / "timeline.csv")
    assert tl and list(tl[0])[:9] == ["media_time_s", "frame", "track_id", "x", "y", "w", "h", "label", "track_label"]
    for row in tl:
        assert float(row["media_time_s"]) == pytest.approx(int(row["frame"]) / FPS, abs=1e-3)
        scores = [float(row[k]) for k in LABELS]
        assert sum(scores) == pytest.approx(1.0, abs=0.02)
        assert row["label"] == LABELS[scores.index(max(scores))]
    assert max(float(r["media_time_s"]) for r in tl) < 4.0
    tracks = rows(folder / "tracks.csv")
    assert tracks
    for t in tracks:
        mine = [r for r in tl if r["track_id"] == t["track_id"]]
        assert int(t["frames"]) == len(mine)
        assert float(t["start_s"]) == pytest.approx(float(mine[0]["media_time_s"]), abs=1e-3)
        assert float(t["end_s"]) == pytest.approx(float(mine[-1]["media_time_s"]), abs=1e-3)
        means = [float(t[f"mean_{k}"]) for k in LABELS]
        assert t["dominant_label"] == LABELS[means.index(max(means))]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["schema"] == "edge-fer-analysis/1" and summary["version"]
    assert summary["frames"] == summary["frames_analysed"] == 120  # frames 0..119 start before 4 s
    assert summary["duration_s"] == pytest.approx(4.0, abs=0.05)
    assert summary["faces"] == len(tl) and summary["tracks"] == len(tracks)
    assert sum(summary["label_share"].values()) == pytest.approx(1.0, abs=0.01)
    assert summary["dominant_label"] == max(summary["label_share"], key=summary["label_share"].get)
    assert summary["processing"]["realtime_factor"] > 0
    assert summary["detector"]["name"] == "yunet" and "default" in summary["model"]
    png = (folder / "emotions.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    plotted = sorted(tracks, key=lambda t: -int(t["frames"]))[:6]
    assert len(plotted) >= 1
    assert min(line_pixels_per_panel(png, len(plotted))) > 200  # every panel shows its lines
    assert not (folder / "annotated.mp4").exists()  # privacy: only on request
    assert (folder / ".complete").is_file() and not list(folder.glob(".*.tmp*"))
    assert "\u2501" not in r.stderr and "frames" not in r.stderr.splitlines()[-1]  # no progress bar off a terminal
    index = json.loads((out / "index.json").read_text())
    assert index["schema"] == "edge-fer-analysis-index/1"
    assert [v["status"] for v in index["videos"]] == ["ok"]
    assert rows(out / "index.csv")[0]["status"] == "ok"


def line_pixels_per_panel(png: bytes, panels: int) -> list[int]:
    """How many strongly coloured pixels (the lines; grid, frame and text are grey) lie inside each
    panel of an emotions.png."""
    import cv2

    from edge_fer import plotimg as P

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert img.shape[0] == P.TOP + panels * P.PANEL + (panels - 1) * P.GAP + P.BOTTOM
    colour = (img.max(axis=2) - img.min(axis=2)) > 60
    counts = []
    for k in range(panels):
        top = P.TOP + k * (P.PANEL + P.GAP)
        counts.append(int(colour[top + 2 : top + P.PANEL - 1, P.LEFT + 2 : P.WIDTH - P.RIGHT - 2].sum()))
    return counts


def test_the_plot_needs_no_matplotlib_and_draws_short_videos(tmp_path, hamilton_clip):
    """The plot is drawn with OpenCV: an install without matplotlib gets it too. A 1-second video
    has fewer analysed frames than the plot's bins: each track's lines are still drawn, not broken at
    every empty bin. ``--out``, the spelling train/convert/adapt accept, is a silent alias of ``-o``."""
    blocked = tmp_path / "block" / "matplotlib"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('matplotlib is blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": str(blocked.parent)}
    out = tmp_path / "out"
    r = subprocess.run(
        [EDGE_FER, "analyze", str(hamilton_clip), "--out", str(out), "--max-seconds", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    folder = out / "hamilton_clip"
    tracks = rows(folder / "tracks.csv")
    assert tracks and (folder / ".complete").is_file()
    assert min(line_pixels_per_panel((folder / "emotions.png").read_bytes(), min(6, len(tracks)))) > 100
    assert "emotions.png" not in r.stderr and "Traceback" not in r.stderr and "deprecated" not in r.stderr


def test_every_k_and_annotate(tmp_path, hamilton_clip):
    out = tmp_path / "out"
    r = cli("analyze", str(hamilton_clip), "-o", str(out), "--every", "3", "--write-annotated", "--max-seconds", "4")
    assert r.returncode == 0, r.stderr
    folder = out / "hamilton_clip"
    tl = rows(folder / "timeline.csv")
    assert tl and all(int(r["frame"]) % 3 == 0 for r in tl)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["frames_analysed"] == (summary["frames"] + 2) // 3
    # the tracker carries a face across the frames between: one track id over frames 3 apart
    by_track: dict[str, list[int]] = {}
    for r in tl:
        by_track.setdefault(r["track_id"], []).append(int(r["frame"]))
    assert any(len(f) >= 5 for f in by_track.values())
    cap = cv2.VideoCapture(str(folder / "annotated.mp4"))
    assert cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_COUNT) >= summary["frames_analysed"] - 1


@pytest.mark.slow  # several runs of the installed command on real video
def test_many_videos_workers_broken_files_and_resume(tmp_path, hamilton_clip):
    videos = tmp_path / "videos"
    (videos / "day2").mkdir(parents=True)
    shutil.copy(hamilton_clip, videos / "a.mp4")
    shutil.copy(hamilton_clip, videos / "day2" / "a.mp4")  # the same name in another folder
    (videos / "notes.mp4").write_text("not a video at all\n")
    write_video(tmp_path / "clip.avi", hamilton_clip, fourcc="MJPG")
    data = (tmp_path / "clip.avi").read_bytes()
    (videos / "cut.avi").write_bytes(data[: len(data) // 2])  # truncated: decodes half, then stops
    out = tmp_path / "out"
    r = cli("analyze", str(videos), "-o", str(out), "--workers", "2", "--max-seconds", "3")
    assert r.returncode == 1, r.stderr  # some failed
    assert "Traceback" not in r.stderr
    index = {
        Path(v["video"]).relative_to(videos).as_posix(): v
        for v in json.loads((out / "index.json").read_text())["videos"]
    }
    assert {k: v["status"] for k, v in index.items()} == {
        "a.mp4": "ok",
        "day2/a.mp4": "ok",
        "cut.avi": "ok",  # --max-seconds 3 stops before the cut
        "notes.mp4": "failed",
    }
    assert "cannot open" in index["notes.mp4"]["error"]
    folders = {Path(v["output"]).name for v in index.values() if v["status"] == "ok"}
    assert len(folders) == 3 and "a" not in folders  # two 'a' videos, two folders
    # two workers and one give the same result, frame for frame
    same = [out / Path(v["output"]).name for k, v in index.items() if k.endswith("a.mp4")]
    assert (same[0] / "timeline.csv").read_text() == (same[1] / "timeline.csv").read_text()

    # without --max-seconds the truncated file fails, with its reason; the others are done again
    # (other options), then a rerun with the same options skips them
    r = cli("analyze", str(videos / "cut.avi"), "-o", str(tmp_path / "out2"))
    assert r.returncode == 1
    cut = json.loads((tmp_path / "out2" / "index.json").read_text())["videos"][0]
    assert cut["status"] == "failed" and "truncated" in cut["error"] and cut["frames"] < 275

    # resume: a completed video is skipped; one whose marker is gone (a killed run) is done again
    done = out / Path(index["a.mp4"]["output"]).name
    redo = out / Path(index["day2/a.mp4"]["output"]).name
    before = (done / "timeline.csv").stat().st_mtime_ns
    (redo / ".complete").unlink()
    (redo / "tracks.csv").unlink()
    r = cli("analyze", str(videos), "-o", str(out), "--workers", "1", "--max-seconds", "3", "--json", "-", "-q")
    assert r.returncode == 1
    again = {Path(v["video"]).relative_to(videos).as_posix(): v["status"] for v in json.loads(r.stdout)["videos"]}
    assert again == {"a.mp4": "skipped", "day2/a.mp4": "ok", "cut.avi": "skipped", "notes.mp4": "failed"}
    assert (done / "timeline.csv").stat().st_mtime_ns == before
    assert (redo / "tracks.csv").is_file() and (redo / ".complete").is_file()


def test_a_file_name_with_a_line_break_stays_on_its_row(tmp_path):
    """The summary table printed a name with a line break (or a terminal escape) as it was: the row
    split in two, and the escape ran in the user's terminal."""
    bad = tmp_path / "in" / "take\n2\x1b[31m.mp4"
    bad.parent.mkdir()
    bad.write_text("not a video\n")
    r = cli("analyze", str(bad.parent), "-o", str(tmp_path / "out"))
    assert r.returncode == 1, r.stderr
    lines = r.stdout.strip("\n").splitlines()
    assert len(lines) == 2 and lines[0].startswith("status"), r.stdout
    assert "take\\n2\\x1b[31m.mp4" in lines[1] and "\x1b" not in r.stdout, lines


@pytest.mark.slow  # several runs of the installed command on real video
def test_killed_run_leaves_no_half_file_and_a_rerun_finishes(tmp_path, hamilton_clip):
    short = tmp_path / "a_short.mp4"
    shutil.copy(hamilton_clip, short)
    video = write_video(tmp_path / "long.mp4", hamilton_clip, passes=4)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [EDGE_FER, "analyze", str(short), str(video), "-o", str(out), "--workers", "1"], stderr=subprocess.DEVNULL
    )
    tmp = out / "long" / ".timeline.csv.tmp"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if tmp.exists() and tmp.stat().st_size > 2000:  # in the middle of the second video
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    folder = out / "long"
    assert not (folder / "timeline.csv").exists() and not (folder / ".complete").exists()
    # the index was written when the first video was done: it says what is done and what is not
    index = json.loads((out / "index.json").read_text())
    assert [v["status"] for v in index["videos"]] == ["ok", "pending"] and index["complete"] is False
    assert index["counts"]["pending"] == 1 and [r["status"] for r in rows(out / "index.csv")] == ["ok", "pending"]
    r = cli("analyze", str(short), str(video), "-o", str(out), "--json", "-", "-q")
    assert r.returncode == 0, r.stderr
    final = json.loads(r.stdout)
    assert [v["status"] for v in final["videos"]] == ["skipped", "ok"] and final["complete"] is True
    assert (folder / "timeline.csv").is_file() and not list(folder.glob(".*.tmp*"))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["frames"] == 4 * 275 and summary["complete"]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, hamilton_clip):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(hamilton_clip, videos / "a.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no videos here")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    cases = [
        ([str(tmp_path / "missing.mp4")], tmp_path / "o1", "does not exist"),
        ([str(fifo)], tmp_path / "o5", "is a FIFO (named pipe), not a video file"),  # it said "does not exist"
        ([str(empty)], tmp_path / "o2", "no videos"),
        ([str(tmp_path / "nothing*.mp4")], tmp_path / "o3", "no videos match"),
        ([str(videos)], videos / "results", "inside the input folder"),
        ([str(videos)], blocker / "sub", "cannot write"),
        ([str(videos)], blocker, "is a file"),
    ]
    for inputs, out, msg in cases:
        r = cli("analyze", *inputs, "-o", str(out))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, (inputs, r.stderr)
        assert lines[-1].startswith("edge-fer: error:") and msg in lines[-1], (msg, r.stderr)
        assert "Traceback" not in r.stderr
        assert not (out.exists() and out.is_dir()), f"{out} was created"
    assert sorted(p.name for p in videos.iterdir()) == ["a.mp4"]
    r = cli("analyze", str(videos), "-o", str(tmp_path / "o4"), "--every", "0")
    assert r.returncode == 2 and "--every" in r.stderr


def worker_children(pid: int) -> set[int]:
    """The worker processes of an ``analyze`` run (its children, but the multiprocessing helper that
    only tracks resources)."""
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    kids = set()
    for k in map(int, r.stdout.split()):
        try:
            cmdline = Path(f"/proc/{k}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:
            kids.add(k)
    return kids


def test_a_worker_that_dies_fails_no_other_video(tmp_path, hamilton_clip):
    """A worker process killed (SIGKILL, as the out-of-memory killer does) in the middle of a video:
    the batch starts fresh workers and analyses again the videos the dead pool lost, the killed one
    included (it died once: not taken as the culprit); every video ends whole, nothing staged is left.
    All three videos were failed before, the healthy one and the one not yet started too."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in "abc":
        shutil.copy(hamilton_clip, videos / f"{name}.mp4")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [EDGE_FER, "analyze", str(videos), "-o", str(out), "--workers", "2", "--max-seconds", "3", "--json", "-", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:  # a video is being analysed
            if list(out.glob("*/.timeline.csv.tmp")) and worker_children(proc.pid):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before a worker could be killed"
        os.kill(min(worker_children(proc.pid)), signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "worker process died" in stderr  # said, as a warning
    index = json.loads(stdout)
    assert [(Path(v["video"]).name, v["status"]) for v in index["videos"]] == [
        ("a.mp4", "ok"),
        ("b.mp4", "ok"),
        ("c.mp4", "ok"),
    ], index["videos"]
    assert index["complete"] is True and index["counts"]["failed"] == 0
    for name in "abc":
        folder = out / name
        assert (folder / ".complete").is_file() and all((folder / f).is_file() for f in analyze_outputs())
        assert not list(folder.glob(".*.tmp*")), sorted(p.name for p in folder.iterdir())
        assert json.loads((folder / "summary.json").read_text())["frames"] == 90  # frames before 3 s
    assert (out / "a" / "timeline.csv").read_text() == (out / "c" / "timeline.csv").read_text()


def analyze_outputs() -> tuple[str, ...]:
    from edge_fer.analyze import OUTPUTS

    return OUTPUTS


KILLER = """
import os

if os.environ.get("EDGE_FER_TEST_KILLER"):  # the worker analysing this video kills itself, every time
    import signal

    import edge_fer.analyze as analyze

    real = analyze.analyze_video

    def analyze_video(video, folder, cfg, opts, progress=None):
        def report(n):  # the first report comes after 25 frames: the video is well under way
            if progress is not None:
                progress(n)
            if video.name == os.environ["EDGE_FER_TEST_KILLER"]:
                os.kill(os.getpid(), signal.SIGKILL)

        return real(video, folder, cfg, opts, report)

    analyze.analyze_video = analyze_video
"""


def test_a_video_that_kills_its_worker_twice_fails_alone(tmp_path, hamilton_clip):
    """A video whose worker dies every time (as one that crashes the decoder or runs out of memory):
    it is failed with that reason after its second death, its staged files removed; the other videos
    are analysed whole, and the exit status says that one failed."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b", "crash"):
        shutil.copy(hamilton_clip, videos / f"{name}.mp4")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILLER)  # imported by every process, the workers included
    env = {**os.environ, "PYTHONPATH": str(hook), "EDGE_FER_TEST_KILLER": "crash.mp4", "EDGE_FER_DEBUG": ""}
    out = tmp_path / "out"
    r = subprocess.run(
        [EDGE_FER, "analyze", str(videos), "-o", str(out), "--workers", "2", "--max-seconds", "3", "--json", "-", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    index = json.loads(r.stdout)
    got = {Path(v["video"]).name: (v["status"], v.get("error")) for v in index["videos"]}
    assert got == {
        "a.mp4": ("ok", None),
        "b.mp4": ("ok", None),
        "crash.mp4": ("failed", "its worker process died (killed, out of memory or a crash)"),
    }, got
    assert index["counts"] == {"ok": 2, "skipped": 0, "failed": 1, "pending": 0}
    for name in ("a", "b"):
        assert (out / name / ".complete").is_file() and not list((out / name).glob(".*.tmp*"))
    crash = out / "crash"
    assert not crash.exists() or not list(crash.glob(".*.tmp*")) and not (crash / ".complete").exists()


def test_workers_do_not_import_the_command_line_again(tmp_path, hamilton_clip):
    """A spawned worker runs the parent's main script again unless told not to; here that script is
    the ``edge-fer`` command, whose import (typer, rich, pydantic) cost each worker about a tenth of a
    second before its first frame. Python's own import log (every process inherits the variable)
    shows the command line imported once, by the parent, and the analysis module by all three."""
    for name in "ab":
        shutil.copy(hamilton_clip, tmp_path / f"{name}.mp4")
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "EDGE_FER_DEBUG": ""}
    r = subprocess.run(
        [EDGE_FER, "analyze", str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4"), "-o", str(tmp_path / "out")]
        + ["--workers", "2", "--max-seconds", "1", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    imported = [line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert imported.count("edge_fer.analyze") == 3  # the parent and both workers
    assert imported.count("edge_fer.cli") == 1  # the parent only
