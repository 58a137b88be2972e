"""`edge-fer doctor` and the start-up backend probe, through the installed `edge-fer` command.

A backend that kills the process (LiteRT 2.2+ dies with SIGSEGV creating the Interpreter where
/proc/cpuinfo lists no ARM cores, e.g. under qemu-user) is played here by a fake ``ai_edge_litert``
package whose Interpreter dereferences NULL. The real one is checked on the emulated Pi by
tests/arm64/smoke.py (tests/test_arm64.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli import run_cli

CRASHING_LITERT = """
import ctypes


class Interpreter:
    def __init__(self, *args, **kwargs):
        ctypes.string_at(0)  # SIGSEGV, like LiteRT 2.2+ where /proc/cpuinfo lists no ARM cores


def load_delegate(*args, **kwargs):
    raise ValueError("no delegate here")
"""


@pytest.fixture
def fakes(tmp_path) -> dict[str, Path]:
    """PYTHONPATH folders: 'crash' holds a crashing ai_edge_litert 9.9.9, 'notf' hides TensorFlow."""
    crash = tmp_path / "fake-crash"
    (crash / "ai_edge_litert").mkdir(parents=True)
    (crash / "ai_edge_litert" / "__init__.py").write_text("")
    (crash / "ai_edge_litert" / "interpreter.py").write_text(CRASHING_LITERT)
    (crash / "ai_edge_litert-9.9.9.dist-info").mkdir()
    (crash / "ai_edge_litert-9.9.9.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ai-edge-litert\nVersion: 9.9.9\n"
    )
    notf = tmp_path / "fake-notf"
    (notf / "tensorflow").mkdir(parents=True)
    (notf / "tensorflow" / "__init__.py").write_text('raise ImportError("TensorFlow hidden by the test")\n')
    return {"crash": crash, "notf": notf}


@pytest.fixture
def image(tmp_path) -> Path:
    import cv2
    import numpy as np

    p = tmp_path / "gray.png"
    cv2.imwrite(str(p), np.full((120, 160, 3), 128, np.uint8))
    return p


def edge_fer(
    *args: str, tmp_path: Path, pythonpath: list[Path] = (), env: dict | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_FER_")}
    e["EDGE_FER_CACHE_DIR"] = str(tmp_path / "cache")
    if pythonpath:
        e["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    e.update(env or {})
    return run_cli(*args, timeout=timeout, env=e, cwd=tmp_path)


def test_doctor_on_this_machine_json(tmp_path):
    r = edge_fer("doctor", "--no-camera", "--backend", "ai_edge_litert", "--json", "-", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)  # --json -: the report alone on stdout, under the common head
    assert list(rep)[:3] == ["schema", "version", "created"] and rep["schema"] == "edge-fer-doctor/1"
    assert rep["verdict"] in ("OK", "WARN") and rep["backend"] == "ai_edge_litert"
    rows = {c["name"]: c for c in rep["checks"]}
    lr = rows["backend ai_edge_litert"]
    assert lr["status"] == "OK" and "ai-edge-litert" in lr["detail"]
    assert len(lr["data"]["probe"]["result"]["output"]) == 7  # one inference on the shipped model
    assert rows["opencv video"]["status"] == "OK" and rows["opencv haar"]["status"] == "OK"
    assert rows["edgetpu delegate"]["status"] in ("OK", "SKIP", "WARN")
    # a full probe of the shipped model is what `edge-fer run` reuses; a --backend subset is not
    assert not (tmp_path / "cache" / "backend-probe.json").exists()


def test_doctor_table_has_a_verdict(tmp_path):
    r = edge_fer("doctor", "--no-camera", "--backend", "ai_edge_litert", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].split() == ["CHECK", "RESULT", "DETAIL"]
    assert any(ln.startswith("backend ai_edge_litert") and " OK " in ln for ln in lines)
    assert lines[-1].startswith("verdict: OK: edge-fer run will use the ai_edge_litert backend")


def test_a_truncated_model_is_blamed_not_the_runtimes(tmp_path):
    """A truncated --model made doctor advise reinstalling ai-edge-litert and TensorFlow, and its
    verdict said no backend works here, though both load the shipped model."""
    from edge_fer.models import shipped

    trunc = tmp_path / "trunc.tflite"
    trunc.write_bytes(shipped("default_int8.tflite").read_bytes()[:100_000])
    r = edge_fer("doctor", "--no-camera", "--model", str(trunc), tmp_path=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "reinstall" not in r.stdout, r.stdout
    assert "fix: the model file is damaged, truncated or not a TFLite model" in r.stdout, r.stdout
    assert r.stdout.splitlines()[-1].startswith("verdict: FAIL: the model does not load"), r.stdout


def test_doctor_reports_a_crashing_backend_with_a_fix(tmp_path, fakes):
    r = edge_fer("doctor", "--no-camera", tmp_path=tmp_path, pythonpath=[fakes["notf"], fakes["crash"]])
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    row = next(i for i, ln in enumerate(lines) if ln.startswith("backend ai_edge_litert"))
    assert "FAIL" in lines[row] and "crashed (SIGSEGV) while loading the model" in lines[row]
    assert "ai-edge-litert 9.9.9" in lines[row]
    assert "fix:" in lines[row + 1] and "ai-edge-litert<2.2" in lines[row + 1]
    assert lines[-1].startswith("verdict: FAIL: no interpreter backend works here")
    assert "Traceback" not in r.stderr and "Segmentation fault" not in r.stderr


def test_run_with_a_crashing_backend_is_one_error_line(tmp_path, fakes, image):
    # Before the start-up probe: the process died with SIGSEGV (returncode -11) and no message.
    r = edge_fer("run", "--source", str(image), tmp_path=tmp_path, pythonpath=[fakes["notf"], fakes["crash"]])
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "edge-fer: error: the ai_edge_litert interpreter backend (ai-edge-litert 9.9.9) crashed (SIGSEGV)"
    )
    assert "Fix:" in last and "edge-fer doctor" in last
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.train  # the fallback backend is tf.lite, from the train extra
def test_run_falls_back_to_a_backend_that_works(tmp_path, fakes, image):
    # LiteRT crashes in the probe; tf.lite (which `import tensorflow.lite` never provided) takes over.
    r = edge_fer("run", "--source", str(image), tmp_path=tmp_path, pythonpath=[fakes["crash"]])
    assert r.returncode == 0, r.stderr
    assert "ai_edge_litert interpreter backend crashed (SIGSEGV)" in r.stderr
    assert "backend tensorflow on cpu" in r.stderr
    cache = json.loads((tmp_path / "cache" / "backend-probe.json").read_text())
    assert cache["backend"] == "tensorflow" and cache["probes"]["ai_edge_litert"] == "crashed"


def test_startup_probe_runs_once_per_installed_version(tmp_path, image):
    r1 = edge_fer("run", "--source", str(image), tmp_path=tmp_path)
    assert r1.returncode == 0, r1.stderr
    assert "probing the interpreter backends in a child process" in r1.stderr
    cache = json.loads((tmp_path / "cache" / "backend-probe.json").read_text())
    assert cache["backend"] == "ai_edge_litert" and cache["probes"] == {"ai_edge_litert": "ok"}
    r2 = edge_fer("run", "--source", str(image), tmp_path=tmp_path)
    assert r2.returncode == 0, r2.stderr
    assert "probing" not in r2.stderr and "backend ai_edge_litert" in r2.stderr


def test_backend_forced_by_environment(tmp_path, image):
    r = edge_fer("run", "--source", str(image), tmp_path=tmp_path, env={"EDGE_FER_BACKEND": "onnx"})
    assert r.returncode == 2
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith("edge-fer: error: EDGE_FER_BACKEND='onnx': unknown interpreter backend")
    )
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "cache").exists()  # a forced backend is not probed


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--model", "missing.tflite"], "cannot read --model missing.tflite: No such file or directory"),
        (["--model", "."], "--model . is a folder, not a regular file"),
        (["--model", "/dev/zero"], "--model /dev/zero is a character device, not a regular file"),
        (["--model", "notes.tflite"], "--model notes.tflite: not a TFLite model (no 'TFL3' file identifier)"),
        (["--video", "missing.mp4"], "--video missing.mp4: no such file"),
        (
            ["--backend", "onnx"],
            "--backend: unknown interpreter backend 'onnx' (choose from ai_edge_litert, tflite_runtime, tensorflow)",
        ),
        (["--timeout", "0"], "--timeout must be positive, got 0.0"),
    ],
)
def test_doctor_user_mistakes_are_one_line(tmp_path, args, msg):
    (tmp_path / "notes.tflite").write_text("not a model\n")  # the file's fault: it blamed the backends (exit 1)
    r = edge_fer("doctor", "--no-camera", *args, tmp_path=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"edge-fer: error: {msg}"]
    assert r.stdout == ""
