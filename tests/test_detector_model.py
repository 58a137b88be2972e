"""A damaged or wrong ``--detector-model`` for the default detector (YuNet) is one line naming the file
and what is wrong with it, exit 2, through the installed ``edge-fer``; a damaged model in the package is
what ``edge-fer doctor`` reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_fer.models import YUNET_FILE, shipped_yunet
from tests.test_cli_errors import assert_one_line_error, cli

REPO = Path(__file__).resolve().parents[1]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, wire: int, payload) -> bytes:
    key = _varint((num << 3) | wire)
    if wire == 0:
        return key + _varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return key + _varint(len(data)) + data


def identity_onnx() -> bytes:
    """A valid ONNX model (ModelProto, written field by field) whose graph is one Identity node:
    OpenCV reads it, but it is not a face detector."""

    def value_info(name: str) -> bytes:
        shape = b"".join(_field(1, 2, _field(1, 0, d)) for d in (1, 3, 320, 320))
        return _field(1, 2, name) + _field(2, 2, _field(1, 2, _field(1, 0, 1) + _field(2, 2, shape)))

    node = _field(1, 2, "x") + _field(2, 2, "y") + _field(4, 2, "Identity")
    graph = _field(1, 2, node) + _field(2, 2, "g") + _field(11, 2, value_info("x")) + _field(12, 2, value_info("y"))
    return _field(1, 0, 7) + _field(7, 2, graph) + _field(8, 2, _field(1, 2, "") + _field(2, 0, 13))


def _bad_models(tmp: Path) -> dict[str, tuple[Path, str]]:
    import cv2

    release = shipped_yunet().read_bytes()
    cases: dict[str, tuple[Path, str]] = {}

    def put(name: str, data: bytes, needle: str) -> None:
        p = tmp / name
        p.write_bytes(data)
        cases[name] = (p, needle)

    put("truncated.onnx", release[: len(release) // 2], "damaged or truncated ONNX file")
    put("text.onnx", b"not a model at all\n", "not an ONNX model")
    put("empty.onnx", b"", "empty file")
    put("classifier.tflite", (REPO / "edge_fer" / "models" / "default_int8.tflite").read_bytes(), "not an ONNX model")
    put("identity.onnx", identity_onnx(), "not a YuNet face detector graph")
    cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml"  # type: ignore[attr-defined]
    put("cascade.xml", cascade.read_bytes(), "a Haar cascade XML, not a YuNet ONNX model")
    d = tmp / "folder.onnx"
    d.mkdir()
    cases["folder.onnx"] = (d, "is a folder, not a regular file")
    cases["missing.onnx"] = (tmp / "missing.onnx", "No such file or directory")
    return cases


@pytest.mark.parametrize(
    "case",
    [
        "truncated.onnx",
        "text.onnx",
        "empty.onnx",
        "classifier.tflite",
        "identity.onnx",
        "cascade.xml",
        "folder.onnx",
        "missing.onnx",
    ],
)
def test_a_bad_detector_model_is_one_line_naming_the_file(tmp_path, face_images, case):
    path, needle = _bad_models(tmp_path)[case]
    p = cli(
        "run", "--source", str(face_images["obama"]), "--detector-model", str(path), "-o", str(tmp_path / "e.jsonl")
    )
    line = assert_one_line_error(p, str(path), needle)
    assert "YuNet model" in line


def test_run_with_no_detector_flag_uses_the_shipped_yunet(tmp_path, face_images):
    """The default `edge-fer run`: YuNet from the package, no path, no download (empty model cache)."""
    out = tmp_path / "e.jsonl"
    p = cli("run", "--source", str(face_images["two_people"]), "--per-frame", "-o", str(out), "--print-config")
    assert p.returncode == 0, p.stderr[-2000:]
    assert 'name = "yunet"' in p.stdout
    p = cli("run", "--source", str(face_images["two_people"]), "--per-frame", "-o", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    faces = [e for e in map(json.loads, out.read_text().splitlines()) if e.get("type") == "face"]
    assert len(faces) == 2  # Haar's boxes are squares: these are YuNet's (taller than wide)
    assert all(e["box"][3] > e["box"][2] for e in faces)
    assert not list(Path(os.environ["EDGE_FER_CACHE_DIR"]).rglob("*.onnx"))  # nothing was fetched


def _doctor_with_package_copy(tmp_path: Path, damage) -> dict:
    """`edge-fer doctor --json -` on a copy of the installed package whose shipped model ``damage`` changed."""
    pkg = tmp_path / "site" / "edge_fer"
    shutil.copytree(REPO / "edge_fer", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    damage(pkg / "models" / YUNET_FILE)
    env = {**os.environ, "PYTHONPATH": str(pkg.parent)}
    code = "import sys; from edge_fer.cli import main; sys.exit(main())"
    p = subprocess.run(
        [sys.executable, "-c", code, "doctor", "--no-camera", "--backend", "ai_edge_litert", "--json", "-"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    rep = json.loads(p.stdout)
    rows = {c["name"]: c for c in rep["checks"]}
    return {"rc": p.returncode, "row": rows["detector yunet"], "rep": rep}


def test_doctor_reports_the_shipped_detector(tmp_path):
    got = _doctor_with_package_copy(tmp_path, lambda p: None)
    assert got["row"]["status"] == "OK" and "FaceDetectorYN" in got["row"]["detail"]
    assert str(tmp_path) in got["row"]["detail"]  # the copy's model was the one checked


@pytest.mark.parametrize(
    "damage,needle",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:50_000]), "damaged or truncated"),
        (lambda p: p.unlink(), "No such file"),
    ],
    ids=["truncated", "deleted"],
)
def test_doctor_says_when_the_shipped_model_is_damaged(tmp_path, damage, needle):
    got = _doctor_with_package_copy(tmp_path, damage)
    row = got["row"]
    assert row["status"] == "FAIL" and needle in row["detail"] and "shipped" in row["detail"]
    assert "reinstall" in row["fix"]
    assert got["rc"] == 1  # the default `edge-fer run` cannot work: the verdict fails


def test_a_damaged_pulled_yunet_is_reported_and_run_falls_back_to_the_shipped_one(tmp_path, face_images):
    """A pulled (cached) YuNet update that was damaged: doctor said OK (it checked only the shipped file)
    while run refused to start with exit 2, and models list showed it as installed without a word."""
    cache = Path(os.environ["EDGE_FER_CACHE_DIR"])
    r = cli("models", "pull", "yunet", "--from", str(shipped_yunet()))
    assert r.returncode == 0, r.stderr
    pulled = cache / "models" / YUNET_FILE
    os.truncate(pulled, 100_000)

    doc = cli("doctor", "--no-camera", "--json", "-")
    rows = {c["name"]: c for c in json.loads(doc.stdout)["checks"]}
    row = rows["detector yunet"]
    assert row["status"] == "WARN" and "pulled into the cache cannot be used" in row["detail"], row
    assert "models pull yunet --force" in row["fix"], row

    out = tmp_path / "ev.jsonl"
    r = cli("run", "--source", str(face_images["obama"]), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "using the YuNet model shipped in the package" in r.stderr
    assert [json.loads(x)["type"] for x in out.read_text().splitlines()]  # the face was found and classified

    listing = cli("models", "list")
    assert "is not the pinned one" in listing.stdout, listing.stdout
