"""Every user mistake is one line on stderr and exit code 2, through the installed ``edge-fer``
command (issue 9, items 5-7). Each case here printed a traceback (or ran on silently) before."""

from __future__ import annotations

import ast
import os
import sys
import tomllib
from pathlib import Path

import pytest

from tests.cli import assert_one_line_error
from tests.cli import run_cli as cli
from tests.conftest import REPO


# --- item 5: usage errors (typer >= 0.29 no longer installs click) --------------------------------
@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "--source", "x.mp4", "--bogus"], "--bogus"),
        (["run", "--source", "x.mp4", "--detect-scale", "abc"], "--detect-scale"),
        (["frobnicate"], "frobnicate"),
        (["train", "--data"], "--data"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, needle):
    line = assert_one_line_error(cli(*args), needle)
    assert line.startswith("edge-fer: error: "), line  # the prefix every error has (docs/cli-conventions.md)


def test_no_arguments_shows_help_without_traceback():
    p = cli()
    assert p.returncode in (0, 2) and "Traceback" not in p.stderr
    assert "run" in p.stdout + p.stderr and "train" in p.stdout + p.stderr


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'[source]\nuri = "\xff\xfe"\n')
    p = cli("--debug", "run", "--config", str(bad))
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_every_imported_package_is_declared():
    """The runtime and the desktop side import only what pyproject.toml declares (click was not)."""
    from importlib.metadata import packages_distributions

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_dist_name(d) for d in meta["dependencies"]}
    for extra in meta["optional-dependencies"].values():
        declared |= {_dist_name(d) for d in extra}
    dists = packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    # hardware stacks that come from the Pi's apt or Coral (not PyPI), backends chosen at run time,
    # and the peer `fer`, which the side-by-side benchmark imports from its own venv when present
    optional_platform = {"picamera2", "pycoral", "tflite_runtime", "libcamera", "systemd", "jax", "torch", "fer"}
    missing = {}
    for folder in ("edge_fer", "train", "convert"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in stdlib or top in {"edge_fer", "tests"} or top in optional_platform:
                        continue
                    owners = {_dist_name(d) for d in dists.get(top, [top])}
                    if not owners & declared:
                        missing.setdefault(top, set()).add(str(path.relative_to(REPO)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def _dist_name(req: str) -> str:
    import re

    return re.split(r"[\s<>=!~;\[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


# --- item 6: tracebacks and silent failures -------------------------------------------------------
def test_config_file_not_utf8(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'[source]\nuri = "caf\xe9"\n')
    assert_one_line_error(cli("run", "--config", str(bad)), "bad.toml:2", "UTF-8")


def test_picamera2_with_a_bad_camera_number(hamilton_clip):
    assert_one_line_error(cli("run", "--source", "picamera2:x"), "picamera2:x")


def test_detector_model_that_is_not_a_cascade(tmp_path, hamilton_clip):
    bogus = tmp_path / "not_a_cascade.xml"
    bogus.write_text("this is not XML\n")
    assert_one_line_error(
        cli(
            "run",
            "--source",
            str(hamilton_clip),
            "--detector",
            "haar",  # YuNet is the default: a cascade goes with --detector haar
            "--detector-model",
            str(bogus),
            "--max-frames",
            "2",
            "-o",
            str(tmp_path / "o.jsonl"),
        ),
        "cascade",
    )


def test_save_crops_into_a_folder_that_cannot_be_created(tmp_path, hamilton_clip):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert_one_line_error(
        cli(
            "run",
            "--source",
            str(hamilton_clip),
            "--save-crops",
            str(blocker / "crops"),
            "--max-frames",
            "2",
            "-o",
            str(tmp_path / "o.jsonl"),
        ),
        "--save-crops",
    )


def test_save_crops_into_a_read_only_folder(tmp_path, hamilton_clip):
    if os.geteuid() == 0:  # root writes into any mode-0555 folder, but no one creates files in sysfs
        ro = Path("/sys")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
    try:
        args = ["--save-crops", str(ro), "--max-frames", "2", "-o", str(tmp_path / "o.jsonl")]
        assert_one_line_error(cli("run", "--source", str(hamilton_clip), *args), "--save-crops", "cannot write")
    finally:
        if ro != Path("/sys"):
            ro.chmod(0o755)


def _csv(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    path.write_text("emotion,pixels,Usage\n" + "".join(f"{e},{p},{u}\n" for e, p, u in rows))
    return path


@pytest.mark.train  # the data checks run after the training backend is found
def test_training_csv_with_a_huge_pixel_value(tmp_path):
    px = " ".join(["99999999999"] + ["0"] * 2303)
    data = _csv(tmp_path / "f.csv", [(0, px, "Training"), (3, " ".join(["0"] * 2304), "Training")])
    assert_one_line_error(cli("train", "--data", str(data), "--out", str(tmp_path / "run")), "line 2")


@pytest.mark.train  # the data checks run after the training backend is found
def test_training_csv_with_a_giant_field(tmp_path):
    data = _csv(tmp_path / "f.csv", [(0, "1 " * 70000, "Training")])
    assert_one_line_error(cli("train", "--data", str(data), "--out", str(tmp_path / "run")), "line 2")


@pytest.mark.train  # the data checks run after the training backend is found
def test_training_set_with_a_single_class_is_refused(tmp_path):
    px = " ".join(["128"] * 2304)
    data = _csv(tmp_path / "f.csv", [(3, px, "Training")] * 20)
    assert_one_line_error(cli("train", "--data", str(data), "--out", str(tmp_path / "run")), "single class")
    assert not (tmp_path / "run" / "metrics.json").exists()


# --- item 7: values accepted but meaningless --------------------------------------------------------
@pytest.mark.parametrize(
    "args,key",
    [
        (["--threads", "1000"], "--threads must be"),
        (["--width", "-5"], "--width must be"),
        (["--detect-scale", "nan"], "--detect-scale must be"),
    ],
)
def test_out_of_range_flags(args, key, hamilton_clip):
    assert_one_line_error(cli("run", "--source", str(hamilton_clip), *args), key)


@pytest.mark.parametrize(
    "toml,key",
    [
        ("[source]\nheight = -480\n", "source.height"),
        ("[source]\nfps = -1.0\n", "source.fps"),
        ("[run]\nstatus_interval_s = -1.0\n", "run.status_interval_s"),
        ("[run]\nstatus_interval_s = nan\n", "run.status_interval_s"),
        ("[tracker]\nswitch_margin = -5.0\n", "tracker.switch_margin"),
        ("[tracker]\nswitch_margin = nan\n", "tracker.switch_margin"),
        ("[tracker]\nmax_missed = 1000000000\n", "tracker.max_missed"),
        ("[detector]\nscore_threshold = -3.0\n", "detector.score_threshold"),
        ("[mqtt]\nport = 0\n", "mqtt.port"),
    ],
)
def test_out_of_range_config_values(tmp_path, toml, key):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    line = assert_one_line_error(cli("run", "--config", str(cfg)), key, "c.toml:")
    assert any(m in line for m in ("[", "(", ">=", "finite"))  # the allowed range is in the message
