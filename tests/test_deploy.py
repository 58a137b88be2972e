"""deploy/: the systemd unit, the Pi installer (syntax, shellcheck, --help, --dry-run) and the example config.

Nothing here installs anything: install-pi.sh only runs with --help / --dry-run (which change nothing).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "edge-fer.service"
SCRIPT = DEPLOY / "install-pi.sh"
EXAMPLE = DEPLOY / "config.example.toml"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax: [Section], Key=Value, repeated keys accumulate, '#'/';' comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    cur = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"line {n}: continuation lines are not used here"
        m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if m:
            cur = sections.setdefault(m.group(1), {})
            continue
        assert cur is not None, f"line {n}: key outside a section"
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key), f"line {n}: not Key=Value: {raw!r}"
        cur.setdefault(key, []).append(value)
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


def test_unit_has_the_required_settings(unit):
    svc = unit["Service"]
    one = lambda k: svc[k][-1]  # noqa: E731
    assert set(unit) == {"Unit", "Service", "Install"}
    assert one("Type") == "notify"
    assert one("ExecStart") == "/opt/edge-fer/venv/bin/edge-fer run --config /etc/edge-fer/config.toml"
    assert one("User") == "edge-fer" and one("Group") == "edge-fer"
    assert set(one("SupplementaryGroups").split()) >= {"video", "plugdev"}
    assert one("Restart") == "on-failure"
    assert 5 <= int(one("WatchdogSec")) <= 300
    assert "PYTHONUNBUFFERED=1" in svc["Environment"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DevicePolicy": "closed",
        "ProtectKernelModules": "yes",
        "RestrictSUIDSGID": "yes",
    }.items():
        assert one(key) == value, key
    assert one("CapabilityBoundingSet") == ""
    allowed = " ".join(svc["DeviceAllow"])
    for dev in ("char-video4linux", "char-media", "char-dma_heap", "char-usb_device"):
        assert dev in allowed, dev
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(
    not shutil.which("systemd-analyze"), reason="systemd-analyze not installed (apt-get install systemd)"
)
def test_unit_passes_systemd_analyze_verify_and_security(tmp_path):
    # verify also checks that ExecStart exists: point it at /bin/true, everything else unchanged.
    text = UNIT.read_text().replace("/opt/edge-fer/venv/bin/edge-fer", "/bin/true")
    (tmp_path / "edge-fer.service").write_text(text)
    r = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "edge-fer.service")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr  # also no "Unknown key" warnings
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(tmp_path / "edge-fer.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for edge-fer\.service: ([0-9.]+)", r.stdout + r.stderr)
    if m is None:
        pytest.skip(f"systemd-analyze security --offline is not usable here: {r.stderr.strip()[:200]}")
    assert float(m.group(1)) <= 3.0, r.stdout[-3000:]


def test_install_script_syntax_and_shellcheck():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)
    assert os.access(SCRIPT, os.X_OK), "install-pi.sh should be executable"
    head = SCRIPT.read_text().splitlines()[:20]
    assert head[0] == "#!/usr/bin/env bash" and "set -euo pipefail" in head
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    r = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout


def run_script(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LC_ALL": "C", **(env_extra or {})},
    )


def test_install_script_help_and_bad_option():
    r = run_script("--help")
    assert r.returncode == 0 and "--dry-run" in r.stdout and "--coral" in r.stdout and "--from" in r.stdout
    r = run_script("--no-such-option")
    assert r.returncode != 0 and "unknown option" in r.stderr


def test_install_script_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    wheel = tmp_path / "edge_fer-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    before = {
        p: p.exists()
        for p in map(Path, ("/etc/edge-fer", "/opt/edge-fer", "/etc/udev/rules.d/71-edge-fer-coral.rules"))
    }
    r = run_script("--dry-run", "--coral", "--from", str(wheel))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for expected in (
        "apt-get install -y --no-install-recommends python3-venv python3-pip python3-picamera2",
        "coral-edgetpu-stable main",
        "libedgetpu1-std",
        "--system-site-packages /opt/edge-fer/venv",
        f"-m pip install --upgrade {wheel}\\[mqtt\\]",
        'ATTRS{idVendor}=="1a6e"',
        'ATTRS{idVendor}=="18d1"',
        'GROUP="plugdev"',
        "/etc/edge-fer/config.toml",
        "/etc/systemd/system/edge-fer.service",
        "systemctl daemon-reload",
        "systemctl enable edge-fer.service",
        "systemctl restart edge-fer.service",
    ):
        assert expected in out, expected
    assert ("useradd --system" in out) or ("user edge-fer exists" in out)
    assert {p: p.exists() for p in before} == before  # a dry run writes nothing
    r = run_script("--dry-run", "--no-apt", "--no-start", "--extras", "")
    assert r.returncode == 0, r.stderr
    assert "+ apt-get" not in r.stdout and "+ systemctl restart" not in r.stdout
    # a pinned release (never "whatever PyPI has today"), numpy 1.x ABI of the Pi camera stack
    assert "pip install --upgrade edge-fer==0.1.0 numpy\\<2\n" in r.stdout
    r = run_script("--dry-run", "--from", str(tmp_path / "missing"))
    assert r.returncode != 0 and "no such file" in r.stderr


EXPECTED_SECTIONS = {"source", "model", "detector", "tracker", "output", "mqtt", "http"}


def test_example_config_is_valid_toml_with_the_documented_sections():
    data = tomllib.loads(EXAMPLE.read_text())
    assert set(data) >= EXPECTED_SECTIONS
    assert {"uri", "width", "height", "fps"} <= set(data["source"])
    assert {"path", "device", "threads"} <= set(data["model"])
    assert {"name", "model", "scale", "every", "min_size"} <= set(data["detector"])
    assert {"path", "per_frame"} <= set(data["output"])
    assert {"host", "port", "topic", "username", "password", "discovery"} <= set(data["mqtt"])
    assert {"host", "port"} <= set(data["http"])
    assert data["http"]["host"] == "127.0.0.1"  # loopback unless the user opts in


def test_example_config_validates_against_the_schema():
    from edge_fer import config

    cfg = config.load(EXAMPLE)  # raises ConfigError naming key and line on any mismatch
    # Complete: every key of the schema appears in the example (with its comment).
    data = tomllib.loads(EXAMPLE.read_text())
    schema = cfg.to_dict()
    missing = {f"{s}.{k}" for s, keys in schema.items() for k in keys if k not in data.get(s, {})}
    assert not missing, f"keys of edge_fer/config.py not in the example: {sorted(missing)}"
    # And the MQTT/HTTP sections are the options the sinks are built from.
    import typing

    from edge_fer.sinks.http import HttpSink
    from edge_fer.sinks.mqtt import MqttSink

    assert typing.get_type_hints(MqttSink.__init__)["options"] is config.MqttConfig
    assert typing.get_type_hints(HttpSink.__init__)["options"] is config.HttpConfig


def test_install_script_pins_the_release_of_this_checkout():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    text = (REPO / "deploy" / "install-pi.sh").read_text()
    assert f"EDGE_FER_VERSION={version}\n" in text, "install-pi.sh must pin the version in pyproject.toml"
    r = run_script("--dry-run", "--no-apt", "--no-start", "--version", "9.9.9")
    assert r.returncode == 0 and "edge-fer==9.9.9" in r.stdout
    r = run_script("--dry-run", "--version", "1.0; rm -rf /")
    assert r.returncode != 0 and "not a version number" in r.stderr


def _gpg_key(tmp_path, name):
    import shutil
    import subprocess

    if not shutil.which("gpg"):
        pytest.skip("gpg not installed")
    home = tmp_path / f"gnupg-{name}"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            f"{name} <{name}@example.invalid>",
            "ed25519",
            "sign",
            "never",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    key = tmp_path / f"{name}.asc"
    key.write_bytes(
        subprocess.run(["gpg", "--batch", "--armor", "--export"], check=True, capture_output=True, env=env).stdout
    )
    out = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-keys"], check=True, capture_output=True, text=True, env=env
    ).stdout
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
    if shutil.which("gpgconf"):  # key generation started a gpg-agent for this home: stop it
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], capture_output=True, env=env)
    return key, fpr


def test_coral_key_is_trusted_only_with_a_pinned_fingerprint(tmp_path):
    key, fpr = _gpg_key(tmp_path, "impostor")
    r = run_script("--check-coral-key", str(key))
    assert r.returncode == 1 and "refusing to trust" in r.stderr and fpr in r.stdout
    r = run_script("--check-coral-key", str(key), env_extra={"CORAL_KEY_FINGERPRINTS": f"0000 {fpr}"})
    assert r.returncode == 0, r.stderr
    assert f"trusted: {fpr}" in r.stdout
    empty = tmp_path / "empty.gpg"
    empty.write_bytes(b"")
    r = run_script("--check-coral-key", str(empty))
    assert r.returncode == 1 and "empty or missing" in r.stderr
