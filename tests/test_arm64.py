"""The arm64 smoke test (tests/arm64/smoke.py): its helpers (fast), and the whole run under qemu (slow).

The slow test runs the same script as .ci/run: Debian Bookworm arm64 (Raspberry Pi OS 64-bit's
userland) under qemu-user, cortex-a72 and cortex-a76. It skips with the reason when qemu-user-static
or mmdebstrap is missing, or when the rootfs/wheels cannot be downloaded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "arm64" / "smoke.py"
SKIPPED = 77


def _smoke():
    spec = importlib.util.spec_from_file_location("edge_fer_arm64_smoke", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_installer_pins_are_read_from_install_pi_sh():
    extras, pins = _smoke().installer_spec()
    assert "mqtt" in extras
    assert "numpy<2" in pins  # the Pi's camera stack is built against numpy 1.x


def test_installer_spec_parses_a_pip_line(tmp_path):
    f = tmp_path / "install.sh"
    f.write_text('EXTRAS="mqtt,plot"\nrun "$VENV/bin/python" -m pip install --upgrade "$pip_spec" "numpy<2" "foo>=1"\n')
    assert _smoke().installer_spec(f) == (["mqtt", "plot"], ["numpy<2", "foo>=1"])


@pytest.mark.parametrize(
    "cpu,part,model", [("cortex-a72", "0xd08", "Raspberry Pi 4"), ("cortex-a76", "0xd0b", "Raspberry Pi 5")]
)
def test_pi_cpuinfo(tmp_path, cpu, part, model):
    smoke = _smoke()
    smoke.set_cpuinfo(tmp_path, cpu)
    text = (tmp_path / "proc" / "cpuinfo").read_text()
    assert f"CPU part\t: {part}" in text and model in text and "CPU implementer\t: 0x41" in text
    assert len(re.findall(r"^processor\t: \d+$", text, re.M)) == len(smoke._present_cpus())
    smoke.set_cpuinfo(tmp_path, None)  # qemu's default: the host's file passes through
    assert not (tmp_path / "proc" / "cpuinfo").exists()


@pytest.mark.slow
def test_arm64_smoke_under_qemu(tmp_path):
    if not (shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")) or not shutil.which("mmdebstrap"):
        pytest.skip("qemu-aarch64-static or mmdebstrap not installed (apt-get install qemu-user-static mmdebstrap)")
    report = tmp_path / "arm64.json"
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--skip-code", str(SKIPPED), "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if r.returncode == SKIPPED:  # a failure under strict skips (CI), with this reason
        pytest.skip(next((ln for ln in r.stdout.splitlines() if "SKIP:" in ln), "skipped"))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    rep = json.loads(report.read_text())
    steps = {(s["step"], s["cpu"]): s for s in rep["steps"]}
    for cpu in ("cortex-a72", "cortex-a76"):
        for step in ("doctor", "bench"):
            assert steps[(step, cpu)]["status"] == "PASS"
        assert steps[("doctor", cpu)]["backend"] == "ai_edge_litert"
    assert rep["installed"]["machine"] == "aarch64"
    assert rep["installed"]["versions"]["numpy"].startswith("1.")  # install-pi.sh's numpy<2


def test_strict_turns_a_skip_into_a_failure_with_its_reason(tmp_path, capsys, monkeypatch):
    """CI runs the smoke with --strict: a missing qemu, mirror or wheel fails the job and says why
    (before, the only Pi-userland check passed without running)."""
    smoke = _smoke()

    def no_mirror(self):
        raise smoke.Skip("mmdebstrap failed (exit 1; no network, or not root?)")

    monkeypatch.setattr(smoke.Smoke, "run", no_mirror)
    common = ["--cache", str(tmp_path / "cache")]
    assert smoke.main(common) == 0
    assert "SKIP: mmdebstrap failed" in capsys.readouterr().out
    assert smoke.main([*common, "--skip-code", str(SKIPPED)]) == SKIPPED
    capsys.readouterr()
    assert smoke.main([*common, "--strict"]) == 1
    out = capsys.readouterr().out
    assert "FAILED (--strict: a skip is a failure): mmdebstrap failed (exit 1; no network, or not root?)" in out


def test_strict_fails_a_step_that_cannot_run(tmp_path, capsys):
    smoke = _smoke()
    for strict, status in ((False, "SKIP"), (True, "FAIL")):
        a = argparse.Namespace(cache=str(tmp_path), cpu=["cortex-a72"], data=None, strict=strict)
        s = smoke.Smoke(a)
        s.not_run("run-video", "/x/hamilton_clip.mp4 not found")
        assert s.results[-1]["status"] == status and s.failed is strict
        assert f"{status} run-video" in capsys.readouterr().out
        shutil.rmtree(s.work, ignore_errors=True)
