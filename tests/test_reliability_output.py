"""Output that stays whole, through the installed ``edge-fer run``: log rotation (create mode, a deleted
file, copytruncate), closed standard file descriptors, and a disk that fills up (a real tmpfs)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import EDGE_FER, fill, mounted_tmpfs
from tests.test_reliability_io import assert_one_clean_error, edge_fer
from tests.test_reliability_net import wait_for


def json_lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(ln) for ln in text.splitlines()]


def n_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def looping_run(tmp_path: Path, clip: Path, out: Path, *extra: str) -> subprocess.Popen:
    errf = open(tmp_path / "stderr.txt", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [EDGE_FER, "run", "--source", str(clip), "--loop", "--per-frame", "-o", str(out), *extra],
        stdout=subprocess.DEVNULL,
        stderr=errf,
    )


def finish(proc: subprocess.Popen, tmp_path: Path) -> str:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(30)
    err = (tmp_path / "stderr.txt").read_text(errors="replace")
    assert code == 0, err[-2000:]
    return err


def test_logrotate_create_mode_and_a_deleted_file_are_followed(tmp_path, hamilton_clip):
    out = tmp_path / "ev.jsonl"
    proc = looping_run(tmp_path, hamilton_clip, out)
    try:
        assert wait_for(lambda: n_lines(out) >= 5, 90)
        out.rename(tmp_path / "ev.jsonl.1")  # logrotate, create mode
        assert wait_for(lambda: n_lines(out) >= 5, 30), "the configured path never came back after a rotation"
        rotated = n_lines(tmp_path / "ev.jsonl.1")
        time.sleep(1.5)
        assert n_lines(tmp_path / "ev.jsonl.1") <= rotated + 30, "events went on into the rotated file"
        out.unlink()  # deleted
        assert wait_for(lambda: n_lines(out) >= 5, 30), "events went into the deleted file"
    finally:
        err = finish(proc, tmp_path)
    assert "opened it again" in err
    for f in (out, tmp_path / "ev.jsonl.1"):
        assert all(ev["type"] for ev in json_lines(f))


def test_copytruncate_writes_from_the_new_end(tmp_path, hamilton_clip):
    out = tmp_path / "ev.csv"
    proc = looping_run(tmp_path, hamilton_clip, out, "--format", "csv")
    try:
        assert wait_for(lambda: n_lines(out) >= 5, 90)
        shutil.copy(out, tmp_path / "ev.csv.1")
        os.truncate(out, 0)  # logrotate copytruncate
        assert wait_for(lambda: n_lines(out) >= 5, 30)
    finally:
        finish(proc, tmp_path)
    data = out.read_bytes()
    assert not data.startswith(b"\0"), "a hole of NUL bytes where the old content was"
    assert data.startswith(b"type,ts,frame"), data[:80]  # the truncated CSV starts again with its header


def with_stdout_closed(args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``edge-fer ARGS`` started with its standard output closed (``>&-``)."""
    return subprocess.run(
        f"exec {EDGE_FER} {args} >&-",
        shell=True,
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_closed_stdout_exits_74_at_once(tmp_path, obama_jpg):
    proc = with_stdout_closed(f"run --source {obama_jpg}", tmp_path)
    assert_one_clean_error(proc, 74, "stdout is closed")


def test_closed_stderr_and_stdin_never_become_the_events_file(tmp_path, hamilton_clip):
    """Before: fd 0 was the events file and fd 2 the video, so native code's messages to stderr went
    into a file of the user's."""
    out = tmp_path / "ev.jsonl"
    proc = subprocess.Popen(
        f"exec {EDGE_FER} run --source {hamilton_clip} --loop --per-frame -o {out} 2>&- 0<&-",
        shell=True,
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        assert wait_for(lambda: n_lines(out) >= 5, 90)
        std = {fd: os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in (0, 2)}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    assert std == {0: os.devnull, 2: os.devnull}, std
    assert all(ev["type"] for ev in json_lines(out))


@pytest.fixture
def full_tmpfs(tmp_path):
    """A real 1 MiB tmpfs, filled up to ``leave`` bytes by the test; skipped where mount is not allowed."""
    with mounted_tmpfs(tmp_path / "mnt", "1m") as mnt:
        yield mnt


def test_crops_on_a_full_disk_are_counted_and_exit_74(tmp_path, full_tmpfs, hamilton_clip):
    crops = full_tmpfs / "crops"
    crops.mkdir()
    fill(full_tmpfs, 3 * 4096)
    out = tmp_path / "ev.jsonl"
    proc = edge_fer(
        "run", "--source", hamilton_clip, "--max-frames", "120", "--save-crops", crops, "-o", out, cwd=tmp_path
    )
    line = assert_one_clean_error(proc, 74, "--save-crops", "crop(s) not written")
    assert "No space left" in line or "space" in line, line
    empty = [p.name for p in crops.glob("*.png") if p.stat().st_size == 0]
    assert not empty, f"0-byte PNGs: {empty[:5]}"
    assert json_lines(out)  # the events themselves were written


def test_annotated_video_on_a_full_disk_exits_74(tmp_path, full_tmpfs, hamilton_clip):
    out = tmp_path / "ev.jsonl"
    proc = edge_fer(
        "run",
        "--source",
        hamilton_clip,
        "--max-frames",
        "200",
        "--annotate",
        full_tmpfs / "ann.mp4",
        "-o",
        out,
        cwd=tmp_path,
    )
    assert_one_clean_error(proc, 74, "--annotate")
    assert json_lines(out)


def test_annotated_video_on_a_disk_already_full_is_exit_74_not_a_usage_error(tmp_path, full_tmpfs, hamilton_clip):
    """OpenCV's writer does not say why it cannot open a file: a full disk was reported as exit 2 (a
    user mistake)."""
    fill(full_tmpfs, 0)
    proc = edge_fer(
        "run",
        "--source",
        hamilton_clip,
        "--max-frames",
        "5",
        "--annotate",
        full_tmpfs / "a.mp4",
        "-o",
        "/dev/null",
        cwd=tmp_path,
    )
    assert_one_clean_error(proc, 74, "annotated video", str(full_tmpfs / "a.mp4"))


def test_events_file_on_a_read_only_disk_is_exit_74(tmp_path, hamilton_clip):
    """A read-only file system under ``-o`` was exit 2 (a user mistake); it is an output error."""
    with mounted_tmpfs(tmp_path / "ro", "1m") as ro:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        proc = edge_fer("run", "--source", hamilton_clip, "--max-frames", "5", "-o", ro / "ev.jsonl", cwd=tmp_path)
        assert_one_clean_error(proc, 74, str(ro / "ev.jsonl"), "Read-only file system")


def test_bench_events_and_plot_that_cannot_be_written_are_exit_74(tmp_path, full_tmpfs, hamilton_clip):
    """``bench --events`` onto a full disk ended with exit 0 and an empty file; ``--plot`` left a
    0-byte PNG (a full disk) or wrote nothing and said nothing (a device that refuses writes)."""
    fill(full_tmpfs, 0)
    base = ["bench", "--source", hamilton_clip, "--max-frames", "40", "--warmup", "0", "-q"]
    proc = edge_fer(*base, "--events", full_tmpfs / "ev.jsonl", cwd=tmp_path)
    assert_one_clean_error(proc, 74, str(full_tmpfs / "ev.jsonl"))
    proc = edge_fer(*base, "--plot", full_tmpfs / "p.png", cwd=tmp_path)
    assert_one_clean_error(proc, 74, str(full_tmpfs / "p.png"))
    assert not (full_tmpfs / "p.png").exists()
    dev = tmp_path / "fulldev"  # a private node of /dev/full's kind (1, 7)
    subprocess.run(["mknod", "-m", "666", str(dev), "c", "1", "7"], check=True)
    proc = edge_fer(*base, "--plot", dev, cwd=tmp_path)
    assert_one_clean_error(proc, 74, str(dev), "No space left on device")
    assert dev.is_char_device()


@pytest.fixture
def obama_jpg():
    from tests.conftest import shared_file

    return shared_file("images/obama.jpg")


def test_closed_stdout_for_a_json_report_says_so(tmp_path):
    proc = with_stdout_closed("models list --json -", tmp_path)
    line = assert_one_clean_error(proc, 74, "JSON report", "stdout is closed")
    assert "NoneType" not in line
