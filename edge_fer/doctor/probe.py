"""The parent side of a probe: run a check in a child Python (:mod:`edge_fer.doctor.child`) and turn
what it said, or how it died (a signal, a timeout), into a :class:`Probe`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_fer.doctor.child import MARK

DEFAULT_TIMEOUT_S = 60.0

_STAGE_WORDS = {
    "import": "importing it",
    "load": "loading the model (creating the Interpreter)",
    "invoke": "running the model",
    "dlopen": "loading the delegate library",
    "delegate": "creating the delegate",
    "cv2": "importing OpenCV",
    "encode": "writing a test clip",
    "decode": "decoding video",
    "haar": "loading the Haar cascade",
    "yunet": "loading the shipped YuNet detector",
    "open": "opening the camera",
    "read": "reading a frame",
    "picamera2": "importing picamera2",
    "list": "listing cameras",
    "exit": "exiting, after a good answer",
}


@dataclass
class Probe:
    """What a child process said (or did not say before it died)."""

    kind: str
    status: str  # the child's status, or "crashed" / "timeout" / "failed"
    result: dict = field(default_factory=dict)
    stage: str | None = None
    signal: str | None = None
    returncode: int | None = None
    seconds: float = 0.0
    stderr_tail: str = ""

    @property
    def where(self) -> str:
        return _STAGE_WORDS.get(self.stage or "", self.stage or "starting")

    def describe_failure(self) -> str:
        if self.status == "crashed":
            return f"crashed ({self.signal}) while {self.where}"
        if self.status == "timeout":
            return f"no answer within {self.seconds:.0f} s (stuck while {self.where})"
        if self.status == "failed":
            last = self.stderr_tail.strip().splitlines()[-1:] or [""]
            err = self.result.get("error") or last[0]
            return f"the probe process failed (exit code {self.returncode}) while {self.where}" + (
                f": {err}" if err else ""
            )
        return str(self.result.get("error") or self.status)


def _child_command() -> list[str]:
    pkg_parent = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.append({pkg_parent!r}); "
        "from edge_fer.doctor.child import main; sys.exit(main(sys.argv[1:]))"
    )
    wrapper = shlex.split(os.environ.get("EDGE_FER_PROBE_WRAPPER", ""))
    return [*wrapper, sys.executable, "-c", code]


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def run_probe(kind: str, args: dict, timeout: float = DEFAULT_TIMEOUT_S) -> Probe:
    """Run one probe in a child process; never raises for what happens in the child."""
    t0 = time.monotonic()
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        cp = subprocess.run(
            [*_child_command(), kind, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            errors="replace",
        )
        stdout, stderr, rc = cp.stdout, cp.stderr, cp.returncode
        timed_out = False
    except subprocess.TimeoutExpired as e:

        def _s(b: Any) -> str:
            return b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or "")

        stdout, stderr, rc, timed_out = _s(e.stdout), _s(e.stderr), None, True
    except OSError as e:
        return Probe(kind, "failed", {"error": f"cannot start a child Python ({e})"}, seconds=time.monotonic() - t0)
    secs = time.monotonic() - t0
    stage, result = None, None
    for line in stdout.splitlines():
        if not line.startswith(MARK):
            continue
        what, _, payload = line[len(MARK) :].partition(" ")
        try:
            value = json.loads(payload)
        except ValueError:
            continue
        if what == "stage":
            stage = value
        elif what == "result":
            result = value
    tail = "\n".join(stderr.strip().splitlines()[-5:])
    if timed_out:
        return Probe(kind, "timeout", {}, stage, None, None, secs, tail)
    if result is not None and rc == 0:
        return Probe(kind, str(result.get("status", "error")), result, stage, None, rc, secs, tail)
    sig = None
    if rc is not None and rc < 0:
        sig = _signal_name(-rc)
    elif result is None and rc is not None and rc - 128 in (4, 6, 7, 8, 11):
        sig = _signal_name(rc - 128)  # a shell or wrapper that reports 128 + N
    if sig:
        return Probe(kind, "crashed", result or {}, stage, sig, rc, secs, tail)
    return Probe(kind, "failed", result or {}, stage, None, rc, secs, tail)
