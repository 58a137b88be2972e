"""Strict skips (tests/conftest.py): with CI=true or EDGE_FER_STRICT_SKIPS=1 a skipped test fails,
its reason printed, unless it needs hardware on the allow-list. A pytest run of a few sample tests
in a subprocess, with and without the mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import HARDWARE, REPO, allowed_skip

SAMPLES = """
import pytest
from tests.conftest import needs_hardware

def test_runs():
    assert 1 + 1 == 2

def test_no_broker():
    pytest.skip("mosquitto broker not found (apt-get install mosquitto)")

def test_no_edgetpu():
    needs_hardware("edgetpu", "no accelerator on USB")

@pytest.mark.train
def test_needs_training():
    import importlib.util
    assert importlib.util.find_spec("tensorflow") is not None
"""

BROKEN_IMPORT = """
import pytest
pytest.importorskip("a_module_that_is_not_installed")

def test_never_collected():
    pass
"""


def pytest_run(tmp_path, *args: str, code: str = SAMPLES, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_samples.py").write_text(code)
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "EDGE_FER_STRICT_SKIPS")}
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q", "-rA"]
    cmd += ["--rootdir", str(tmp_path), "-c", os.devnull, *args, str(tmp_path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, env={**base, **env})


def test_without_the_mode_skips_are_skips(tmp_path):
    r = pytest_run(tmp_path)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "PASSED" in r.stdout and "failed" not in r.stdout
    assert "test_samples.py:9: mosquitto broker not found" in r.stdout


@pytest.mark.parametrize("env", [{"EDGE_FER_STRICT_SKIPS": "1"}, {"CI": "true"}])
def test_strict_fails_every_skip_but_missing_hardware(tmp_path, env):
    r = pytest_run(tmp_path, **env)
    assert r.returncode == 1, r.stdout[-3000:]
    out = r.stdout
    assert "FAILED" in out and "test_no_broker" in out and "mosquitto broker not found" in out
    assert "not hardware on the allow-list" in out
    assert "SKIPPED" in out and "needs hardware: a Coral Edge TPU" in out and "no accelerator on USB" in out
    if importlib_has("tensorflow"):
        assert re.search(r"PASSED \S*::test_needs_training", out)
    else:  # the train extra is missing: deselect the marker, never skip it in CI
        assert "test_needs_training" in out and "needs the train extra" in out


def test_strict_fails_a_module_that_skips_itself_at_import(tmp_path):
    """``pytest.importorskip`` at module level turns a broken or missing module into a skip."""
    r = pytest_run(tmp_path, code=BROKEN_IMPORT)
    assert r.returncode == pytest.ExitCode.NO_TESTS_COLLECTED and "1 skipped" in r.stdout
    r = pytest_run(tmp_path, code=BROKEN_IMPORT, EDGE_FER_STRICT_SKIPS="1")
    assert r.returncode != 0 and "not hardware on the allow-list" in r.stdout
    assert "could not import 'a_module_that_is_not_installed'" in r.stdout


def test_a_runtime_only_run_deselects_the_training_tests(tmp_path):
    r = pytest_run(tmp_path, "-m", "not train", "-k", "not broker", EDGE_FER_STRICT_SKIPS="1")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "1 passed, 1 skipped, 2 deselected" in r.stdout, r.stdout[-2000:]


def test_only_allow_listed_hardware_is_allowed():
    assert set(HARDWARE) == {"edgetpu", "picamera", "gpu"}
    assert allowed_skip("needs hardware: " + HARDWARE["gpu"] + " (none found)")
    assert not allowed_skip("needs hardware: a mosquitto broker")
    assert not allowed_skip("could not import 'tensorflow': No module named 'tensorflow'")
    from tests.conftest import needs_hardware

    with pytest.raises(ValueError, match="allow-list"):
        needs_hardware("broker")


def importlib_has(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
