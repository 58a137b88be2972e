"""One convention across the commands (docs/cli-conventions.md): flag spellings and their deprecated
forms, the exit-code table, the JSON head, ``--json -``. Through the installed ``edge-fer`` of this venv
in a subprocess, on real files."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_fer import __version__
from edge_fer.schema import REMOVED_IN, rename, renamed, translate_argv
from tests.cli import EDGE_FER


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 180):
    full = {**os.environ, "EDGE_FER_DEBUG": "", **(env or {})}
    return subprocess.run([EDGE_FER, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=full)


def error_lines(p: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in p.stderr.splitlines() if ln.startswith("edge-fer") and "error" in ln]


def warnings(p: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in p.stderr.splitlines() if ln.startswith("edge-fer: warning:")]


def assert_head(doc: dict, kind: str) -> None:
    assert list(doc)[:3] == ["schema", "version", "created"], list(doc)[:5]
    assert doc["schema"] == f"edge-fer-{kind}/1" and doc["version"] == __version__
    assert doc["created"].endswith("Z") and doc["created"][:2] == "20"


@pytest.fixture
def faces_dir(tmp_path, face_images) -> Path:
    """DIR/<class>/* with two real photos (eval's labeled-folder input)."""
    root = tmp_path / "faces"
    for label, name in (("happy", "obama"), ("neutral", "two_people")):
        (root / label).mkdir(parents=True)
        (root / label / f"{name}.jpg").write_bytes(face_images[name].read_bytes())
    return root


# --- bare commands, help text --------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["models"]])
def test_bare_command_prints_help_on_stdout_and_exits_0(args):
    p = cli(*args)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"Usage: edge-fer{' models' if args else ''} ") and "Commands:" in p.stdout
    assert "error" not in p.stderr


def test_help_text_is_plain_text_brackets_survive():
    p = cli("run", "--help")
    assert p.returncode == 0
    assert "edge-fer[mqtt]" in " ".join(p.stdout.split())  # rich markup ate "[mqtt]"


def test_a_config_without_source_is_refused_like_a_missing_flag(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[detector]\nevery = 2\n")
    from_file, from_flags = cli("run", "--config", str(cfg)), cli("run", "--detect-every", "2")
    for p in (from_file, from_flags):
        assert p.returncode == 2 and len(error_lines(p)) == 1, p.stderr
        assert "no source" in p.stderr and "[source]" in p.stderr
    assert error_lines(from_file) == error_lines(from_flags)
    # an empty uri in the file is no source either (it used to default to camera 0)
    cfg.write_text('[source]\nuri = ""\n')
    assert error_lines(cli("run", "--config", str(cfg))) == error_lines(from_flags)


# --- spellings -----------------------------------------------------------------------------------


def test_translate_argv_forms():
    rename("t28-demo", "--old", "--new")
    rename("t28-demo", "--keep", "--kept", warn=False)
    said: list[str] = []
    argv = ["--debug", "t28-demo", "--old", "1", "--old=2", "--keep", "x", "--", "--old"]
    assert translate_argv(argv, said.append) == [
        "--debug",
        "t28-demo",
        "--new",
        "1",
        "--new=2",
        "--kept",
        "x",
        "--",
        "--old",
    ]
    assert len(said) == 2 and all("deprecated" in s and REMOVED_IN in s and "--new" in s for s in said)
    assert translate_argv(["run", "--old"], said.append) == ["run", "--old"]  # another command's flag
    with pytest.raises(ValueError):
        rename("t28-demo", "--a/--no-a", "--b")


def test_every_command_registers_its_old_spellings():
    import edge_fer.cli  # noqa: F401  (registers the commands)

    table = renamed()
    for command in ("convert", "train", "adapt", "analyze"):
        assert table[command]["--out"] == ("--output", False), command  # a silent alias
    assert table["convert"]["--report"] == ("--json", True)
    assert table["convert"]["--quality"] == ("--write-quality-gate", True)
    assert table["bench"]["--loop"] == ("--repeat", True)


def test_one_meaning_per_flag_name_across_commands():
    """A flag name is a switch in every command or takes a value in every command; convert no longer
    has a --quality that means something else than run's."""
    import typer.main

    from edge_fer.cli import app

    group = typer.main.get_command(app)
    kinds: dict[str, set[bool]] = {}
    for cmd in group.commands.values():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        for c in subs.values() if subs else [cmd]:
            for p in c.params:
                for o in (*p.opts, *p.secondary_opts):
                    if o.startswith("--"):
                        kinds.setdefault(o, set()).add(bool(getattr(p, "is_flag", False)))
    assert {o: k for o, k in kinds.items() if len(k) > 1} == {}
    convert = {o for p in group.commands["convert"].params for o in (*p.opts, *p.secondary_opts)}  # type: ignore[attr-defined]
    assert {"-o", "--output", "--json", "-q", "--write-quality-gate"} <= convert and "--quality" not in convert


@pytest.fixture
def short_clip(tmp_path, hamilton_clip) -> Path:
    """The first 4 frames of the shared clip as their own video."""
    cap = cv2.VideoCapture(str(hamilton_clip))
    frames = [cap.read()[1] for _ in range(4)]
    cap.release()
    out = tmp_path / "short.mp4"
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
    for f in frames:
        vw.write(f)
    vw.release()
    return out


def test_deprecated_spelling_works_with_one_warning_line(tmp_path, short_clip):
    base = ["bench", "--source", str(short_clip), "--warmup", "0", "--json", "-", "-q"]
    old, new = cli(*base, "--loop", "2", cwd=tmp_path), cli(*base, "--repeat", "2", cwd=tmp_path)
    assert old.returncode == 0 and new.returncode == 0, (old.stderr, new.stderr)
    said = warnings(old)
    assert len(said) == 1 and "'edge-fer bench --loop' is deprecated" in said[0] and "use --repeat" in said[0]
    assert warnings(new) == []
    for p in (old, new):
        doc = json.loads(p.stdout)  # --json -: the report alone on stdout
        assert_head(doc, "bench")
        assert doc["loops"] == 2 and doc["frames"] == 8 and isinstance(doc["config"]["threads"], int)
        assert isinstance(doc["machine"]["runtime"]["threads"], int)
    assert not (tmp_path / "-").exists()  # '-' used to be a file name


# --- exit codes ----------------------------------------------------------------------------------


def test_network_failure_exits_69(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    url = f"http://127.0.0.1:{port}/yunet.onnx"
    p = cli("models", "pull", "yunet", "--url", url, "--timeout", "5", env={"EDGE_FER_CACHE_DIR": str(tmp_path)})
    assert p.returncode == 69, p.stderr
    assert len(error_lines(p)) == 1 and "cannot download yunet" in p.stderr and "Traceback" not in p.stderr


def test_a_bug_exits_70_with_one_line_and_the_debug_hint(tmp_path):
    """An exception no code path expects (injected at start-up) is exit 70, not 1: one line that says
    it is a bug and how to see the traceback; --debug shows it."""
    (tmp_path / "sitecustomize.py").write_text(
        "import edge_fer.models_store as m\n"
        "def describe():\n"
        "    raise RuntimeError('injected fault')\n"
        "m.describe = describe\n"
    )
    env = {"PYTHONPATH": str(tmp_path), "EDGE_FER_CACHE_DIR": str(tmp_path / "cache")}
    p = cli("models", "list", env=env)
    assert p.returncode == 70, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines == [
        "edge-fer: internal error: RuntimeError: injected fault (a bug; rerun with --debug for the traceback "
        "and report it)"
    ]
    assert "Traceback" in cli("--debug", "models", "list", env=env).stderr


def test_output_errors_exit_74_in_eval_bench_and_convert(tmp_path, faces_dir, hamilton_clip):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    report = str(blocker / "r.json")  # its folder cannot be made: a file is in the way

    p = cli("eval", "--data", str(faces_dir), "--json", report, "-q")
    assert p.returncode == 74 and len(error_lines(p)) == 1 and "a-file" in p.stderr, p.stderr

    p = cli("bench", "--source", str(hamilton_clip), "--max-frames", "2", "--warmup", "0", "--json", report, "-q")
    assert p.returncode == 74 and len(error_lines(p)) == 1 and "a-file" in p.stderr, p.stderr

    # convert checks its outputs before TensorFlow is imported: a run directory is enough here
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"PK\x03\x04 not read before the outputs are checked")
    p = cli("convert", str(run), "--out", str(tmp_path / "missing" / "m.tflite"), "--report", str(tmp_path / "r.json"))
    assert p.returncode == 74 and len(error_lines(p)) == 1 and "does not exist" in p.stderr, p.stderr
    assert len(warnings(p)) == 1 and "--report" in warnings(p)[0]  # --out is a silent alias


# --- JSON ----------------------------------------------------------------------------------------


def test_json_dash_is_stdout_with_the_head(tmp_path, faces_dir):
    p = cli("eval", "--data", str(faces_dir), "--json", "-", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)  # no table mixed in
    assert_head(doc, "eval")
    assert doc["n"] == 2 and len(doc["confusion_matrix"]) == len(doc["labels"]) and "confusion" not in doc
    p = cli("models", "list", "--json", "-", cwd=tmp_path, env={"EDGE_FER_CACHE_DIR": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert_head(doc, "models")
    assert [m["name"] for m in doc["models"]] == ["yunet"] and doc["models"][0]["installed"] is None
    assert not (tmp_path / "-").exists()


def test_eval_detector_flags_are_run_s():
    """eval's detector flags come from the run schema: the same names and the same defaults (eval
    had --detect-scale 1.0 where run has 0.5)."""
    import re

    def defaults(command: str) -> dict[str, str]:
        text = " ".join(cli(command, "--help").stdout.split())
        flags = ("--detector ", "--detector-model", "--detect-scale", "--min-face")
        return {f: re.search(r"\(default: ([^)]*)\)", text.split(f, 1)[1]).group(1) for f in flags}  # type: ignore[union-attr]

    run, ev = defaults("run"), defaults("eval")
    assert ev == run and run["--detect-scale"] == "0.5"


def test_events_carry_the_head_and_csv_keeps_every_jsonl_field(tmp_path, face_images):
    src = tmp_path / "img"
    src.mkdir()
    for name in ("obama", "two_people"):
        (src / f"{name}.jpg").write_bytes(face_images[name].read_bytes())
    base = ["run", "--source", str(src), "--per-frame", "--overwrite"]
    p = cli(*base, "-o", str(tmp_path / "e.jsonl"))
    assert p.returncode == 0, p.stderr
    events = [json.loads(ln) for ln in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert events and all(e["schema"] == "edge-fer-event/1" and e["version"] == __version__ for e in events)
    assert {"face", "face_appeared", "face_left"} <= {e["type"] for e in events}
    p = cli(*base, "--format", "csv", "-o", str(tmp_path / "e.csv"))
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader((tmp_path / "e.csv").open(newline="")))
    assert len(rows) == len(events)
    # two runs: the same events, field for field (numbers may differ in the last digits when the
    # start-up probe picks another interpreter backend for one of them)
    for e, row in zip(events, rows):
        assert {k: row[k] for k in ("schema", "version", "type", "frame", "track_id")} == {
            k: str(e[k]) for k in ("schema", "version", "type", "frame", "track_id")
        }
        for key, value in e.items():
            if key == "box":
                assert [int(row[c]) for c in "xywh"] == value
            elif key == "scores":
                assert {k: float(row[k]) for k in value} == pytest.approx(value, abs=0.02)
            elif isinstance(value, bool):
                assert row[key] == str(value).lower(), key
            elif isinstance(value, (int, float)):
                assert float(row[key]) == pytest.approx(value, abs=60 if key == "ts" else 0.02), key
            else:
                assert row[key] == str(value), key
        assert {k for k in row if row[k] not in ("", None)} - set(e) <= set(e.get("scores") or {}) | set("xywh")


def test_csv_header_keeps_the_old_columns_first(tmp_path):
    """The CSV's first columns are unchanged (readers by position keep working); the extra fields
    and the head come last."""
    img = tmp_path / "noise.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (120, 160), dtype=np.uint8))
    p = cli("run", "--source", str(img), "--format", "csv", "-o", str(tmp_path / "e.csv"))
    assert p.returncode == 0, p.stderr
    header = (tmp_path / "e.csv").read_text().splitlines()[0].split(",")
    assert header[:9] == ["type", "ts", "frame", "track_id", "label", "x", "y", "w", "h"]
    assert header[-2:] == ["schema", "version"] and "previous" in header and "duration_s" in header


def test_the_generated_reference_shows_one_convention():
    """The generated CLI reference (docs/reference/cli.md, edge_fer._docs) offers no deprecated
    spelling, and every command that writes a report offers --json and -q."""
    import re

    from edge_fer._docs import cli_reference
    from edge_fer.schema import renamed

    sections = {
        head: body
        for head, body in re.findall(r"^## edge-fer ([a-z ]+)\n(.*?)(?=^## |\Z)", cli_reference(), re.M | re.S)
    }
    assert {"run", "bench", "eval", "convert", "doctor", "models list"} <= set(sections)
    for command, table in renamed().items():
        for old in table:
            if command in sections:
                assert f"`{old} " not in sections[command] and f"`{old}`" not in sections[command], (command, old)
    for command in ("bench", "eval", "doctor", "convert", "models list"):
        assert "`--json " in sections[command] and "`-q`" in sections[command], command
