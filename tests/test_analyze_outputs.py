"""`edge-fer analyze` when its outputs cannot be written, through the installed command, on real
files: a full disk stops the batch with exit 74 and leaves no staged file; ``.complete`` is only
written when every output (the plot too) is whole; a damaged ``summary.json`` is repaired by a rerun."""

from __future__ import annotations

import json
import shutil

from tests.cli import run_cli
from tests.test_reliability_io import assert_one_clean_error
from tests.test_reliability_output import fill, full_tmpfs  # noqa: F401  (a fixture)

TIMEOUT = 300


def analyze(*args, cwd):
    return run_cli("analyze", *map(str, args), cwd=cwd, timeout=TIMEOUT)


def test_a_full_disk_stops_the_batch_with_exit_74_and_no_staged_files(tmp_path, full_tmpfs, hamilton_clip):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(hamilton_clip, videos / name)
    out = full_tmpfs / "out"
    fill(full_tmpfs, 40 * 1024)  # room for the index, not for a timeline
    proc = analyze(videos, "-o", out, "-j", "1", cwd=tmp_path)
    assert_one_clean_error(proc, 74, "No space left on device")
    assert not [p.name for p in out.rglob("*") if ".tmp" in p.name]  # nothing staged is left behind
    assert not list(out.rglob(".complete"))


def test_complete_means_the_plot_was_written_too(tmp_path, hamilton_clip):
    out = tmp_path / "out"
    folder = out / "hamilton_clip"
    (folder / "emotions.png").mkdir(parents=True)  # the plot cannot be written where it goes
    proc = analyze(hamilton_clip, "-o", out, "--max-seconds", "2", cwd=tmp_path)
    assert proc.returncode == 1 and "emotions.png" in proc.stderr, proc.stderr[-2000:]
    assert not (folder / ".complete").exists()
    index = json.loads((out / "index.json").read_text())
    assert index["videos"][0]["status"] == "failed" and "emotions.png" in index["videos"][0]["error"]

    (folder / "emotions.png").rmdir()
    proc = analyze(hamilton_clip, "-o", out, "--max-seconds", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (folder / "emotions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (folder / ".complete").is_file()


def test_a_damaged_summary_is_analysed_again(tmp_path, hamilton_clip):
    out = tmp_path / "out"
    assert analyze(hamilton_clip, "-o", out, "--max-seconds", "2", cwd=tmp_path).returncode == 0
    summary = out / "hamilton_clip" / "summary.json"
    summary.write_text("")  # emptied after the run, the marker still there
    proc = analyze(hamilton_clip, "-o", out, "--max-seconds", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(summary.read_text())["complete"] is True
    assert json.loads((out / "index.json").read_text())["videos"][0]["status"] == "ok"


def test_damage_in_the_middle_is_skipped_and_the_video_completes(tmp_path, hamilton_clip):
    """Bytes destroyed mid-file: the unreadable frames are skipped and counted, the rest is analysed
    to the end, and the video is complete (it was 'failed: damaged or truncated ... decoding stopped',
    which was not true, and every rerun analysed it again)."""
    import random

    video = tmp_path / "damaged.mp4"
    data = bytearray(hamilton_clip.read_bytes())
    rng = random.Random(1)
    mid = len(data) // 2
    data[mid : mid + 20000] = bytes(rng.getrandbits(8) for _ in range(20000))
    video.write_bytes(bytes(data))
    out = tmp_path / "out"
    proc = analyze(video, "-o", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "damaged" / "summary.json").read_text())
    assert summary["complete"] is True and summary["error"] is None and summary["bad_frames"] >= 1
    last = float((out / "damaged" / "timeline.csv").read_text().strip().splitlines()[-1].split(",")[0])
    assert last > 9.0  # analysed to the clip's end (9.14 s)
    assert (out / "damaged" / ".complete").is_file()


def test_a_second_analyze_on_the_same_output_is_refused_while_the_first_runs(tmp_path, hamilton_clip):
    """Two runs on one --output renamed each other's staged files ('failed' videos, a wrong index);
    the second is now refused at start, and the first finishes undisturbed."""
    import subprocess
    import time

    from tests.cli import cli_command

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        shutil.copy(hamilton_clip, videos / f"v{i}.mp4")
    out = tmp_path / "out"
    first = subprocess.Popen(
        cli_command("analyze", str(videos), "-o", str(out), "-j", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / ".lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        second = analyze(videos, "-o", out, "-j", "1", cwd=tmp_path)
        assert_one_clean_error(second, 2, "another edge-fer analyze is writing there")
    finally:
        _, err = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 0, err[-2000:]
    index = json.loads((out / "index.json").read_text())
    assert [v["status"] for v in index["videos"]] == ["ok", "ok", "ok"]
    assert analyze(videos, "-o", out, cwd=tmp_path).returncode == 0  # the lock went with the first run


def test_a_fifo_named_like_a_video_in_a_folder_is_said_and_skipped(tmp_path, hamilton_clip):
    import os

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(hamilton_clip, videos / "a.mp4")
    os.mkfifo(videos / "b.mp4")
    out = tmp_path / "out"
    proc = analyze(videos, "-o", out, "--max-seconds", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "b.mp4: not a regular file; skipped" in proc.stderr  # it was left out without a word
    assert [v["video"] for v in json.loads((out / "index.json").read_text())["videos"]] == [str(videos / "a.mp4")]
