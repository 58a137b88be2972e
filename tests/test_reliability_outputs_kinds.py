"""Outputs that are not plain files, and outputs aimed at inputs, through the installed ``edge-fer``:

* ``--json PATH`` where PATH is a link, a device or a FIFO: a device is written to (``/dev/null``
  takes it, ``/dev/full`` is exit 74), never replaced by a file; a link keeps its link; a FIFO with
  no reader is exit 74, not a wait;
* ``analyze --json`` aimed at an input video is refused before anything is analysed, and so is a
  ``--json`` folder that does not exist.
"""

from __future__ import annotations

import os
import shutil

from tests.cli import run_cli
from tests.test_reliability_io import assert_one_clean_error

TIMEOUT = 120


def test_json_report_onto_a_link_to_a_device_writes_to_the_device(tmp_path):
    null = tmp_path / "null.json"
    null.symlink_to(os.devnull)
    proc = run_cli("models", "list", "--json", str(null), "-q", cwd=tmp_path, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert null.is_symlink() and os.readlink(null) == os.devnull  # not replaced by a regular file

    full = tmp_path / "full.json"
    full.symlink_to("/dev/full")
    proc = run_cli("doctor", "--json", str(full), "-q", cwd=tmp_path, timeout=TIMEOUT)
    assert_one_clean_error(proc, 74, str(full), "No space left on device")
    assert full.is_symlink()


def test_json_report_onto_a_link_to_a_file_keeps_the_link(tmp_path):
    real = tmp_path / "reports" / "models.json"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    proc = run_cli("models", "list", "--json", str(link), "-q", cwd=tmp_path, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and real.read_text().startswith("{")


def test_json_report_onto_a_fifo_nobody_reads_is_exit_74_not_a_wait(tmp_path):
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    proc = run_cli("models", "list", "--json", str(fifo), "-q", cwd=tmp_path, timeout=TIMEOUT)
    assert_one_clean_error(proc, 74, str(fifo), "no reader")
    assert fifo.is_fifo()


def test_analyze_refuses_a_json_report_over_an_input_video(tmp_path, hamilton_clip):
    video = tmp_path / "talk.mp4"
    shutil.copy(hamilton_clip, video)
    before = video.read_bytes()
    proc = run_cli(
        "analyze", str(video), "-o", str(tmp_path / "out"), "--json", str(video), cwd=tmp_path, timeout=TIMEOUT
    )
    assert_one_clean_error(proc, 2, "--json", str(video), "input")
    assert video.read_bytes() == before and not (tmp_path / "out").exists()

    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(hamilton_clip, folder / "a.mp4")
    proc = run_cli(
        "analyze",
        str(folder),
        "-o",
        str(tmp_path / "out"),
        "--json",
        str(folder / "a.mp4"),
        cwd=tmp_path,
        timeout=TIMEOUT,
    )
    assert_one_clean_error(proc, 2, "--json", "input")
    assert (folder / "a.mp4").read_bytes() == before


def test_analyze_checks_the_json_folder_before_analysing(tmp_path, hamilton_clip):
    """A --json folder that cannot be made is exit 74 before any video is analysed (it was found
    after the whole batch); a missing one is created, as eval, doctor and bench do."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "index.json"
    proc = run_cli(
        "analyze", str(hamilton_clip), "-o", str(tmp_path / "out"), "--json", str(target), cwd=tmp_path, timeout=TIMEOUT
    )
    assert_one_clean_error(proc, 74, str(target))
    assert not (tmp_path / "out").exists()

    made = tmp_path / "reports" / "index.json"
    proc = run_cli(
        "analyze",
        str(hamilton_clip),
        "-o",
        str(tmp_path / "out"),
        "--max-seconds",
        "1",
        "--json",
        str(made),
        cwd=tmp_path,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert made.read_text().startswith("{")


def test_a_full_stdout_is_exit_74_for_every_command(tmp_path):
    """A table, a report or the help that cannot be written to stdout (a full disk) is an output
    error, exit 74, with one line saying so; it was exit 2 with an empty reason."""
    for args in (["models", "list"], ["doctor"], ["--help"], ["analyze", "--help"]):
        with open("/dev/full", "w") as full:
            proc = run_cli(*args, cwd=tmp_path, timeout=TIMEOUT, stdout=full, capture_output=False, stderr=-1)
        assert_one_clean_error(proc, 74, "cannot write to stdout", "No space left on device")


def test_an_annotate_target_that_cannot_be_a_video_is_refused_before_the_first_frame(tmp_path, hamilton_clip):
    """A name without a video extension, another extension, or a folder: refused at start, exit 2
    (found only after the whole source before: 'disk full?', and a folder became 'folder.1')."""
    folder = tmp_path / "videos"
    folder.mkdir()
    out = tmp_path / "ev.jsonl"
    for target, words in (
        (tmp_path / "annotated", ("no extension", ".mp4")),
        (tmp_path / "annotated.txt", ("'.txt'",)),
        (folder, ("is a folder",)),
    ):
        proc = run_cli(
            "run",
            "--source",
            str(hamilton_clip),
            "--annotate",
            str(target),
            "-o",
            str(out),
            cwd=tmp_path,
            timeout=TIMEOUT,
        )
        assert_one_clean_error(proc, 2, "--annotate", *words)
        assert "stopped after" not in proc.stderr  # refused before the first frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["videos"] and not list(folder.iterdir())
