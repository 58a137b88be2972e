"""The one way tests run the command line: the ``edge-fer`` console script of the venv under test
(the Python running pytest), in a subprocess, as a user runs it. Never the first ``edge-fer`` on
PATH (another install) and never ``python -m`` (which skips the installed entry point)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

EDGE_FER = str(Path(sys.executable).with_name("edge-fer"))


def cli_command(*args: str | os.PathLike) -> list[str]:
    """The argv that runs the installed ``edge-fer`` with ``args``."""
    if not Path(EDGE_FER).exists():
        raise FileNotFoundError(f"{EDGE_FER} is missing: install the package into this venv (pip install -e .)")
    return [EDGE_FER, *map(str, args)]


def _env(env: dict[str, str] | None) -> dict[str, str]:
    # EDGE_FER_DEBUG would turn the one-line errors under test into tracebacks
    return {**os.environ, "EDGE_FER_DEBUG": ""} if env is None else env


def run_cli(
    *args: str | os.PathLike, env: dict[str, str] | None = None, timeout: float = 120, **kw
) -> subprocess.CompletedProcess:
    """Run ``edge-fer *args`` to completion; stdout and stderr captured as text.

    ``env`` replaces the environment (default: this process's, without EDGE_FER_DEBUG)."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(cli_command(*args), env=_env(env), timeout=timeout, **kw)


def popen_cli(*args: str | os.PathLike, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    """Start ``edge-fer *args`` (a daemon under test); the caller waits for it."""
    return subprocess.Popen(cli_command(*args), env=_env(env), **kw)


def signal_when(
    args: list[str | os.PathLike], ready: Callable[[], bool], sig: int, wait: float = 300, timeout: float = 120
) -> tuple[int, str]:
    """Start ``edge-fer *args``, send it ``sig`` once ``ready()`` (polled every few milliseconds, for
    at most ``wait`` seconds; it must still be running then), and wait for it to end: (exit code,
    stderr). Killed if it outlives ``timeout``."""
    import signal
    import time

    # as from a terminal: a test run in the background (nohup, CI) would hand its ignored SIGINT on
    proc = popen_cli(
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + wait
        while not (now := ready()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert now, "the command ended, or was never ready, before the signal"
        proc.send_signal(sig)  # to a command that may just have ended: the caller judges its outcome
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


# Packages a runtime-only install does not have. Importing one under env_without_tensorflow() fails as
# it would there, and leaves a trace (<folder>/<name>/IMPORTED) that imported_blocked() reports.
BLOCKED = ("tensorflow", "keras", "tf_keras")
_BLOCKER = (
    "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').touch()\nraise ImportError('blocked by the test')\n"
)


def env_without_tensorflow(folder: Path, names: tuple[str, ...] = BLOCKED) -> dict[str, str]:
    """This process's environment, with ``names`` (TensorFlow and Keras) shadowed by packages that
    refuse to import."""
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "__init__.py").write_text(_BLOCKER)
    env = _env(None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return env


def imported_blocked(folder: Path) -> list[str]:
    """The blocked packages something tried to import under env_without_tensorflow(folder)."""
    return [name for name in BLOCKED if (folder / name / "IMPORTED").exists()]


def assert_one_line_error(p: subprocess.CompletedProcess, *needles: str) -> str:
    """A usage or input error: exit 2, no traceback, exactly one ``edge-fer...: error: ...`` line
    containing every needle. Returns that line."""
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("edge-fer") and ": error: " in ln]
    assert len(errors) == 1, p.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


@contextlib.contextmanager
def mounted_tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` (``"1m"``) mounted on ``mnt``: a disk that fills up. Skips the test
    where mounting is not allowed (not root)."""
    import pytest

    mnt.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Fill ``folder``'s file system up to ``leave`` free bytes with one file (returned)."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    filler = folder / "filler"
    filler.write_bytes(b"\0" * max(0, free - leave))
    return filler
