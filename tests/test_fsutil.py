"""Atomic writes reach the disk: the file's data and the folder entry of its rename are both fsynced
(an SD card can lose a rename on a power cut)."""

from __future__ import annotations

import os
import stat

from edge_fer import fsutil, jsondoc


def _record_fsyncs(monkeypatch) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        seen.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real(fd)

    monkeypatch.setattr(fsutil.os, "fsync", fsync)
    return seen


def test_atomic_write_fsyncs_the_file_then_its_folder(tmp_path, monkeypatch):
    seen = _record_fsyncs(monkeypatch)
    target = tmp_path / "report.json"
    jsondoc.write(target, jsondoc.document("eval", {"accuracy": 0.5}))
    assert [kind for kind, _ in seen] == ["file", "dir"]
    assert seen[1][1] == tmp_path.stat().st_ino  # the target's folder, after the rename
    assert jsondoc.document("eval", {})["schema"] == "edge-fer-eval/1"
    assert target.read_text().startswith('{\n  "schema": "edge-fer-eval/1"')


def test_replace_durably_on_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = _record_fsyncs(monkeypatch)
    (tmp_path / "a.tmp").write_text("x")
    fsutil.replace_durably("a.tmp", "a.txt")
    assert (tmp_path / "a.txt").read_text() == "x" and seen == [("dir", tmp_path.stat().st_ino)]


def test_a_name_that_is_not_utf8_reaches_opencv_through_a_link_that_is_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR read again
    plain = tmp_path / "v.mp4"
    with fsutil.opencv_path(plain) as name:
        assert name == str(plain)
    odd = tmp_path / os.fsdecode(b"v\xff.mp4")
    odd.write_bytes(b"data")
    with fsutil.opencv_path(odd) as name:
        name.encode("utf-8")  # OpenCV can take it
        assert name.endswith("/media.mp4") and open(name, "rb").read() == b"data"
    assert not list((tmp_path / "tmp").iterdir())
    assert fsutil.path_text(odd).endswith("/v\\xff.mp4") and fsutil.path_text("plain") == "plain"
