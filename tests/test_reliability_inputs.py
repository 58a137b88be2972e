"""Never hang, never read without bound: what a command is given is checked (file type, size) before it
is opened or read, through the installed ``edge-fer`` with real FIFOs, devices and sparse files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.cli import EDGE_FER
from tests.conftest import shared_file
from tests.test_reliability_io import assert_one_clean_error

TIMEOUT = 60  # before: each of these blocked for ever (a FIFO) or read until memory ran out


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [EDGE_FER, *map(str, args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"edge-fer {' '.join(map(str, args))} blocked for {TIMEOUT}s")


@pytest.fixture
def special(tmp_path):
    """name -> a path of that kind: a FIFO without writer or reader, a character device, a folder, a
    2 GiB sparse file."""
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    big = tmp_path / "big.tflite"
    with open(big, "wb") as f:
        f.truncate(2 << 30)
    return {"fifo": fifo, "zero": Path("/dev/zero"), "folder": folder, "big": big}


@pytest.mark.parametrize("kind", ["fifo", "zero", "folder", "big"])
def test_config_that_is_not_a_small_regular_file_is_refused(tmp_path, special, kind):
    proc = cli("run", "--config", special[kind], "--source", "x.mp4", cwd=tmp_path)
    assert_one_clean_error(proc, 2, "config", str(special[kind]))


@pytest.mark.parametrize("kind", ["fifo", "zero", "folder", "big"])
def test_model_that_is_not_a_small_regular_file_is_refused(tmp_path, special, kind):
    img = shared_file("images/obama.jpg")
    proc = cli("run", "--model", special[kind], "--source", img, cwd=tmp_path)
    assert_one_clean_error(proc, 2, "model", str(special[kind]))


def test_detector_model_fifo_is_refused(tmp_path, special):
    img = shared_file("images/obama.jpg")
    proc = cli("run", "--detector", "yunet", "--detector-model", special["fifo"], "--source", img, cwd=tmp_path)
    assert_one_clean_error(proc, 2, "--detector-model", "FIFO")


def test_output_fifo_without_reader_is_one_line_not_a_block(tmp_path):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    proc = cli("run", "--source", shared_file("images/obama.jpg"), "-o", fifo, cwd=tmp_path)
    assert_one_clean_error(proc, 2, "FIFO", "nobody reads")


def test_output_fifo_with_a_reader_gets_the_events(tmp_path):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    proc = cli("run", "--source", shared_file("images/obama.jpg"), "-o", fifo, cwd=tmp_path)
    out = reader.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"type":"face' in out


def test_dataset_fifo_image_and_huge_zip_member_are_counted_not_read(tmp_path):
    data = tmp_path / "data" / "happy"
    data.mkdir(parents=True)
    shutil.copy(shared_file("images/obama_240p.jpg"), data / "face.jpg")
    os.mkfifo(data / "blocked.jpg")
    proc = cli("eval", "--data", tmp_path / "data", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "unreadable 1" in proc.stdout, proc.stdout
    # a zip whose member declares 1.5 GiB (zeros: a few MB compressed) is not inflated
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(data / "face.jpg", "happy/face.jpg")
        with zf.open("happy/bomb.jpg", "w", force_zip64=True) as f:
            block = b"\0" * (1 << 24)
            for _ in range(96):
                f.write(block)
    assert z.stat().st_size < 10 << 20
    proc = cli("eval", "--data", z, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "unreadable 1" in proc.stdout, proc.stdout


def test_images_source_folder_with_a_fifo_is_skipped(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(shared_file("images/obama.jpg"), folder / "a.jpg")
    os.mkfifo(folder / "b.jpg")
    proc = cli("run", "--source", folder, "-o", tmp_path / "ev.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "b.jpg: skipped" in proc.stderr, proc.stderr[-2000:]


def test_an_output_that_is_an_input_is_refused_in_every_command(tmp_path):
    clip = tmp_path / "v.mp4"
    shutil.copy(shared_file("video/hamilton_clip.mp4"), clip)
    img = tmp_path / "face.jpg"
    shutil.copy(shared_file("images/obama.jpg"), img)
    data = tmp_path / "data" / "happy"
    data.mkdir(parents=True)
    shutil.copy(img, data / "a.jpg")
    before = {p: p.read_bytes() for p in (clip, img)}
    cases = [
        (["bench", "--source", clip, "--json", clip], "--json"),
        (["bench", "--source", clip, "--plot", clip], "--plot"),
        (["run", "--source", img, "-o", img], "--output"),
        (["run", "--source", clip, "--annotate", clip], "--annotate"),
        (["run", "--source", tmp_path / "data" / "happy", "--save-crops", tmp_path / "data"], "--save-crops"),
        (["eval", "--data", tmp_path / "data", "--json", data / "a.jpg"], "--json"),
        (["doctor", "--video", clip, "--json", clip], "--json"),
    ]
    for args, flag in cases:
        proc = cli(*args, cwd=tmp_path)
        assert_one_clean_error(proc, 2, flag)
    assert all(p.read_bytes() == b for p, b in before.items())


# -- file names that are not valid UTF-8 ------------------------------------------------------------------
# Python holds such a name with surrogate escapes; OpenCV crashed (a segmentation fault, exit 139, no
# message) when given one. Images are decoded from their bytes, videos opened through a temporary link.


def not_utf8(name: str) -> str:
    """``name`` with a byte 0xFF before its extension, as Python holds it (``x\\udcff.jpg``)."""
    stem, dot, ext = name.rpartition(".")
    return os.fsdecode(stem.encode() + b"\xff" + dot.encode() + ext.encode())


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """TMPDIR for the commands under test: what they leave in it (a link) is seen."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    return tmp


def test_image_folder_with_a_name_that_is_not_utf8_is_processed(tmp_path, private_tmp):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(shared_file("images/obama_240p.jpg"), folder / "a.jpg")
    shutil.copy(shared_file("images/obama_240p.jpg"), folder / not_utf8("x.jpg"))
    proc = cli("run", "--source", folder, "-o", "-", cwd=tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    images = {json.loads(ln).get("image") for ln in proc.stdout.splitlines()}
    assert images == {str(folder / "a.jpg"), str(folder / "x\\xff.jpg")}, images  # the byte as \xNN
    proc = cli("bench", "--source", folder, "--warmup", "0", cwd=tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "2 frames measured" in proc.stdout, proc.stdout
    assert not list(private_tmp.iterdir())


def test_video_with_a_name_that_is_not_utf8_runs_and_is_analysed(tmp_path, private_tmp):
    clip = tmp_path / not_utf8("v.mp4")
    shutil.copy(shared_file("video/hamilton_clip.mp4"), clip)
    annotated = tmp_path / not_utf8("a.mp4")
    proc = cli("run", "--source", clip, "--max-frames", "5", "--annotate", annotated, "-o", "-", cwd=tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "stopped after 5 frames" in proc.stderr, proc.stderr[-2000:]
    assert annotated.stat().st_size > 0  # written through the link, under its own name
    out = tmp_path / "out"
    proc = cli("analyze", clip, "-o", out, "--max-seconds", "1", cwd=tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "v\\xff.mp4" in proc.stdout, proc.stdout
    index = json.loads((out / "index.json").read_text())
    (row,) = index["videos"]
    assert row["status"] == "ok" and row["video"].endswith("v\\xff.mp4"), row
    assert (out / "index.csv").read_text(encoding="utf-8").count("v\\xff") == 2  # the video, its folder
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not list(private_tmp.iterdir())  # the links are gone
