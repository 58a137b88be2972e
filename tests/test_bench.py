"""`edge-fer bench`: report structure and sanity on a short generated video, model-only mode, the
real-time budget's exit codes, bad input. Never asserts absolute speeds."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_fer import bench
from edge_fer.cli import main
from edge_fer.pipeline import STAGES
from edge_fer.stats import summarize_ms
from tests.cli import env_without_tensorflow, imported_blocked, run_cli
from tests.conftest import shared_file

N_FRAMES = 24


def run(capsys, *args):
    code = main(["bench", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def short_video(tmp_path_factory) -> Path:
    """A few dozen 480x272 frames: the face photo (427x240) pasted at a position that drifts a little."""
    import cv2

    face = cv2.imread(str(shared_file("images/obama_240p.jpg")))
    assert face is not None
    h, w = 272, 480
    path = tmp_path_factory.mktemp("bench") / "short.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (w, h))
    if not vw.isOpened():
        pytest.skip("OpenCV cannot write MJPG video here")
    for i in range(N_FRAMES):
        frame = np.full((h, w, 3), 40, np.uint8)
        dx = i % 6
        y0, x0 = (h - face.shape[0]) // 2, (w - face.shape[1]) // 2 - 3 + dx
        frame[y0 : y0 + face.shape[0], x0 : x0 + face.shape[1]] = face
        vw.write(frame)
    vw.release()
    return path


def _ordered(s: dict) -> bool:
    return (
        s["min_ms"] <= s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
        and s["min_ms"] <= s["mean_ms"] <= s["max_ms"]
    )


def test_summarize_percentiles_ordered():
    rng = np.random.default_rng(0)
    for data in (rng.exponential(0.01, 500), [0.002], np.full(7, 0.003), rng.random(3)):
        s = summarize_ms(data)
        assert _ordered(s) and s["n"] == len(data)
    assert summarize_ms([])["n"] == 0


def test_recording_times_keeps_every_frame_and_the_window():
    t = bench.RecordingTimes()
    t.add("detect", 0.5)
    t.add("detect", 0.25)
    t.add("sink", 0.1)
    assert t.take() == {"detect": 0.75, "sink": 0.1}
    assert t.take() == {}
    assert t.stages["detect"].n == 2  # the pipeline's own StageTimes still sees them


def test_pipeline_report_structure(tmp_path, capsys, short_video, tiny_bundle):
    out = tmp_path / "b.json"
    code, stdout, err = run(
        capsys, "--source", str(short_video), "--model", str(tiny_bundle), "--json", str(out), "--warmup", "4"
    )
    assert code == 0, err
    rep = json.loads(out.read_text())
    # the binding keys
    assert {"fps", "frames", "stages", "end_to_end", "machine"} <= set(rep)
    assert set(rep["stages"]) == set(STAGES)
    for name, st in rep["stages"].items():
        assert {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms"} <= set(st), name
        assert _ordered(st), (name, st)
        assert st["n"] == rep["frames"]
    e = rep["end_to_end"]
    assert {"p50_ms", "p99_ms"} <= set(e) and _ordered(e) and e["n"] == rep["frames"]
    # the stages are inside the end-to-end time
    assert sum(st["mean_ms"] for st in rep["stages"].values()) <= e["mean_ms"] * 1.001 + 1e-3
    # counts
    assert rep["warmup_frames"] == 4
    assert rep["processed_frames"] == N_FRAMES == rep["frames"] + rep["warmup_frames"]
    assert rep["detect_runs"] == rep["frames"]  # detect every frame
    assert 0 <= rep["frames_with_faces"] <= rep["frames"] and rep["faces"] >= rep["frames_with_faces"]
    assert rep["faces"] > 0  # the pasted photo is found
    assert rep["fps"] > 0 and rep["faces_per_s"] > 0 and rep["dropped_frames"] == 0
    assert math.isclose(rep["fps"], rep["frames"] / rep["wall_s"], rel_tol=0.01)
    assert rep["cpu"]["process_s"] >= 0 and rep["peak_rss_mb"] > 0
    m = rep["machine"]
    assert m["cpu"] and m["cores"] >= 1 and m["python"] and m["opencv"]
    assert (
        m["runtime"]["backend"] and m["runtime"]["version"] and "threads" in m["runtime"] and "delegate" in m["runtime"]
    )
    # no --threads: one interpreter thread per usable core (at most 4), not the interpreter's single thread
    assert m["runtime"]["threads"] == min(4, len(os.sched_getaffinity(0)))
    assert isinstance(m["cpu_flags"], list)
    assert rep["model"]["format"] == "int8" and rep["model"]["size_bytes"] == tiny_bundle.stat().st_size
    assert "samples" not in rep and rep["budget"] is None
    # the terminal table
    for name in (*STAGES, "end-to-end", "frames/s", "machine:"):
        assert name in stdout


def test_the_shipped_model_is_recorded_without_a_machine_path(tmp_path, short_video, tiny_bundle):
    """The JSON recorded the shipped model's absolute path (its install folder, a home folder); a
    result file shared or committed from it carried that path. Another model stays as given."""
    out = tmp_path / "b.json"
    r = run_cli("bench", "--source", short_video, "--max-frames", "6", "--warmup", "1", "--json", out, "-q")
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["model"]["path"] == rep["config"]["model"] == "edge_fer/models/default_int8.tflite"
    r = run_cli("bench", "--model-only", "--model", tiny_bundle, "--runs", "5", "--json", out, "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["models"][0]["path"] == str(tiny_bundle)


def test_loop_max_frames_detect_every(tmp_path, capsys, short_video, tiny_bundle):
    out = tmp_path / "b.json"
    code, _, err = run(
        capsys,
        "--source",
        str(short_video),
        "--model",
        str(tiny_bundle),
        "--json",
        str(out),
        "-q",
        "--repeat",
        "3",
        "--warmup",
        "2",
        "--detect-every",
        "3",
        "--max-frames",
        str(2 * N_FRAMES),
    )
    assert code == 0, err
    rep = json.loads(out.read_text())
    assert rep["loops"] == 3
    assert rep["frames"] == 2 * N_FRAMES and rep["processed_frames"] == 2 * N_FRAMES + 2
    assert rep["detect_runs"] == sum(1 for i in range(2, 2 + rep["frames"]) if i % 3 == 0)
    assert rep["config"]["detect_every"] == 3

    code, _, err = run(
        capsys,
        "--source",
        str(short_video),
        "--model",
        str(tiny_bundle),
        "--json",
        str(out),
        "-q",
        "--repeat",
        "2",
        "--warmup",
        "0",
    )
    assert code == 0, err
    rep = json.loads(out.read_text())
    assert rep["frames"] == rep["processed_frames"] == 2 * N_FRAMES and rep["loops"] == 2


def test_budget_verdicts_and_exit_codes(tmp_path, capsys, short_video, tiny_bundle):
    base = ["--source", str(short_video), "--model", str(tiny_bundle), "--warmup", "2", "--max-frames", "8"]
    # an impossible budget: FAIL printed, exit 0 unless --fail-under
    code, out, _ = run(capsys, *base, "--budget-ms", "0.000001")
    assert code == 0 and "FAIL" in out and "overall: FAIL" in out
    js = tmp_path / "b.json"
    code, out, _ = run(capsys, *base, "--budget-ms", "0.000001", "--fail-under", "--json", str(js))
    assert code == 1
    b = json.loads(js.read_text())["budget"]
    assert b["pass"] is False and b["end_to_end"]["pass"] is False and set(b["stages"]) == set(STAGES)
    assert b["end_to_end"]["headroom_ms"] < 0 and b["percentile"] == "p99"
    # a budget nothing can miss (1000 s per frame): PASS, exit 0 with --fail-under
    code, out, _ = run(capsys, *base, "--target-fps", "0.001", "--fail-under", "--budget-percentile", "max")
    assert code == 0 and "overall: PASS" in out
    # --fail-under without a budget is a usage error
    code, out, err = run(capsys, *base, "--fail-under")
    assert code == 2 and "edge-fer: error:" in err and "--fail-under" in err


def test_model_only_several_bundles_and_threads(tmp_path, capsys, tiny_bundle, tiny_bundle_float):
    js = tmp_path / "m.json"
    code, out, err = run(
        capsys,
        "--model-only",
        "--model",
        str(tiny_bundle),
        "--model",
        str(tiny_bundle_float),
        "--threads",
        "1,2",
        "--runs",
        "30",
        "--warmup",
        "3",
        "--json",
        str(js),
    )
    assert code == 0, err
    rep = json.loads(js.read_text())
    assert rep["mode"] == "model" and "machine" in rep and rep["runs"] == 30
    rows = rep["models"]
    assert [(Path(r["path"]).name, r["threads"]) for r in rows] == [
        (tiny_bundle.name, 1),
        (tiny_bundle.name, 2),
        (tiny_bundle_float.name, 1),
        (tiny_bundle_float.name, 2),
    ]
    assert [r["format"] for r in rows] == ["int8", "int8", "float32", "float32"]
    for r in rows:
        assert r["error"] is None
        assert r["init_ms"] > 0 and r["first_inference_ms"] > 0
        assert _ordered(r["latency"]) and _ordered(r["invoke"]) and r["latency"]["n"] == 30
        assert r["size_bytes"] == Path(r["path"]).stat().st_size
        assert r["accuracy"] is None  # the fixture bundles carry no metrics
    assert tiny_bundle.name in out and "float32" in out and "p99 ms" in out


def test_model_only_budget_and_accuracy_from_metadata(capsys, tiny_bundle):
    code, out, _ = run(
        capsys, "--model-only", "--model", str(tiny_bundle), "--runs", "5", "--budget-ms", "0.000001", "--fail-under"
    )
    assert code == 1 and "FAIL" in out

    class M:
        metrics = {
            "quantized": {"eval": {"split": "PrivateTest"}, "float": {"accuracy": 0.61}, "int8": {"accuracy": 0.6}}
        }

    assert bench.bundle_accuracy(M, "int8") == (0.6, "PrivateTest")
    assert bench.bundle_accuracy(M, "float32") == (0.61, "PrivateTest")

    class T:
        metrics = {"PublicTest": {"accuracy": 0.5}, "PrivateTest": {"accuracy": 0.55}}

    assert bench.bundle_accuracy(T, "int8") == (0.55, "PrivateTest")


def test_model_only_skipped_row_without_a_reason(tmp_path, capsys, monkeypatch, tiny_bundle, tiny_bundle_float):
    """A skipped row is told by its type, not by its error text: an error with an empty message once
    made the budget and the table read the latency of a row that has none (AttributeError)."""
    from edge_fer.bench import run_model
    from edge_fer.errors import ModelError

    real = run_model.bench_model

    def bench_model(path, **kw):
        if Path(path) == Path(tiny_bundle_float):
            raise ModelError("")
        return real(path, **kw)

    monkeypatch.setattr(run_model, "bench_model", bench_model)
    js = tmp_path / "m.json"
    model_args = ["--model", str(tiny_bundle), "--model", str(tiny_bundle_float)]
    code, out, err = run(capsys, "--model-only", *model_args, "--runs", "3", "--budget-ms", "1000", "--json", str(js))
    assert code == 0, err
    rep = json.loads(js.read_text())
    assert [r["error"] for r in rep["models"]] == [None, ""]
    assert rep["budget"]["models"][1] is None and rep["budget"]["pass"] is True
    assert f"skipped {tiny_bundle_float.name}" in out


def test_plot_written(tmp_path, capsys, short_video, tiny_bundle):
    png = tmp_path / "p.png"
    code, _, err = run(
        capsys,
        "--source",
        str(short_video),
        "--model",
        str(tiny_bundle),
        "--warmup",
        "2",
        "--max-frames",
        "6",
        "--plot",
        str(png),
        "--target-fps",
        "30",
        "-q",
    )
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_missing_extra(tmp_path, capsys, monkeypatch, short_video, tiny_bundle):
    for m in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, m)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run(
        capsys,
        "--source",
        str(short_video),
        "--model",
        str(tiny_bundle),
        "--warmup",
        "1",
        "--max-frames",
        "2",
        "--plot",
        str(tmp_path / "p.png"),
        "--json",
        str(tmp_path / "b.json"),
        "-q",
    )
    assert code == 2 and "'plot' extra" in err and "Traceback" not in err
    assert not (tmp_path / "b.json").exists()  # refused before measuring, not after


@pytest.mark.parametrize("spec", ["999999", "65", "1,,2", " ", "2,"])
def test_model_only_threads_out_of_range_or_malformed_is_one_line(capsys, tiny_bundle, spec):
    """``--threads 999999`` crashed the interpreter (a segfault after 16 s); ``1,,2`` was taken as 1,2."""
    code, out, err = run(capsys, "--model-only", "--model", str(tiny_bundle), "--runs", "2", "--threads", spec)
    _one_error_line(code, out, err, "--threads")


def test_repeat_zero_names_repeat(capsys, short_video, tiny_bundle):
    code, out, err = run(capsys, "--source", str(short_video), "--model", str(tiny_bundle), "--repeat", "0")
    _one_error_line(code, out, err, "--repeat must be >= 1")


def _one_error_line(code, out, err, *needles):
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("edge-fer: error:"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[-1], (n, lines[-1])


def test_bad_inputs_exit_2(tmp_path, capsys, short_video, tiny_bundle):
    # missing source
    missing = tmp_path / "nope.mp4"
    _one_error_line(*run(capsys, "--source", str(missing), "--model", str(tiny_bundle)), str(missing))
    _one_error_line(*run(capsys, "--model", str(tiny_bundle)), "--source")
    # unreadable / not a model, in both modes
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model" * 10)
    _one_error_line(*run(capsys, "--source", str(short_video), "--model", str(bad)), str(bad))
    _one_error_line(*run(capsys, "--model-only", "--model", str(tiny_bundle), "--model", str(bad)), str(bad))
    _one_error_line(*run(capsys, "--model-only", "--model", str(tmp_path / "absent.tflite")), "absent.tflite")
    # a file that is not a video
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 100)
    _one_error_line(*run(capsys, "--source", str(junk), "--model", str(tiny_bundle)), str(junk))
    # zero frames: a folder whose only image cannot be decoded
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    _one_error_line(*run(capsys, "--source", str(folder), "--model", str(tiny_bundle)), "no frames")
    # every frame eaten by the warm-up
    _one_error_line(
        *run(capsys, "--source", str(short_video), "--model", str(tiny_bundle), "--warmup", str(N_FRAMES)), "warm-up"
    )
    # usage mistakes
    _one_error_line(
        *run(capsys, "--source", str(short_video), "--model", str(tiny_bundle), "--threads", "1,2"), "--model-only"
    )
    _one_error_line(
        *run(capsys, "--source", str(short_video), "--model", str(tiny_bundle), "--threads", "x"), "--threads"
    )
    _one_error_line(*run(capsys, "--source", str(short_video), "--target-fps", "30", "--budget-ms", "10"), "not both")
    _one_error_line(*run(capsys, "--source", str(short_video), "--compare", "deepface"), "deepface")


def test_compare_fer_missing_peer_is_one_clear_error(capsys, short_video, tiny_bundle):
    try:
        import fer  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the fer package is installed here")
    _one_error_line(
        *run(capsys, "--source", str(short_video), "--model", str(tiny_bundle), "--compare", "fer"),
        "'fer' package",
        "--no-deps fer",
    )


def test_bench_never_imports_tensorflow(short_video, tiny_bundle, tmp_path):
    js, block = tmp_path / "b.json", tmp_path / "block"
    args = ["--source", short_video, "--model", tiny_bundle, "--warmup", "1", "--max-frames", "3", "--json", js, "-q"]
    r = run_cli("bench", *args, env=env_without_tensorflow(block))
    assert r.returncode == 0, r.stderr
    assert imported_blocked(block) == []
    assert json.loads(js.read_text())["frames"] == 3


def test_compare_fer_runs_the_packaged_module(tmp_path, capsys, monkeypatch, short_video, tiny_bundle):
    """--compare fer runs edge_fer.bench.compare_fer (the one implementation), here with a stand-in peer."""
    import types

    class FakeFER:
        def detect_emotions(self, img):
            return [{"box": [0, 0, 8, 8]}]

    fer_pkg, fer_mod = types.ModuleType("fer"), types.ModuleType("fer.fer")
    fer_mod.FER = FakeFER
    fer_pkg.fer = fer_mod
    monkeypatch.setitem(sys.modules, "fer", fer_pkg)
    monkeypatch.setitem(sys.modules, "fer.fer", fer_mod)
    js = tmp_path / "c.json"
    code, out, err = run(
        capsys,
        "--source",
        str(short_video),
        "--model",
        str(tiny_bundle),
        "--warmup",
        "2",
        "--max-frames",
        "5",
        "--compare",
        "fer",
        "--json",
        str(js),
    )
    assert code == 0, err
    rep = json.loads(js.read_text())
    c = rep["compare"]
    assert c["mode"] == "compare" and c["peer"] == "fer" and c["frames"] == 5 and c["fer"]["faces"] == 5
    assert list(rep)[-1] == "compare" and "side-by-side on" in out and "frames/s ratio" in out
