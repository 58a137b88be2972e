"""`edge-fer doctor`: probe this machine, each check in a child process, and say what to fix.

A native crash (SIGSEGV in an interpreter's C++ code, SIGILL from a wheel built for a newer CPU)
cannot be caught in the process it happens in. So every check that loads native code runs in a
child Python process (``python -c ... edge_fer.doctor._child_main``); the parent reads the stages
the child reached from its stdout, so a crash becomes a row such as "crashed (SIGSEGV) while
loading the model" with a fix, never a bare "Segmentation fault".

Checks: every importable interpreter backend (``ai_edge_litert``, ``tflite_runtime``,
``tensorflow``) on the shipped model (load + one inference on a fixed input, through
:func:`edge_fer.interpreter.load_interpreter`, the runtime's own code), the Edge TPU delegate,
OpenCV's video decoding and its Haar cascade (the default detector), the V4L2 cameras and
picamera2.

The daemon's start-up (:func:`startup_backend`, called by ``edge-fer run``) uses the same backend
probe once per installed set of versions (cached as JSON, see :func:`cache_dir`) and tells
:mod:`edge_fer.interpreter` which backend to use, so a backend that kills the process is skipped
for the next one that works, or ends the run with one clear error line.

Environment:
  ``EDGE_FER_BACKEND``        force a backend (no probe at start-up)
  ``EDGE_FER_PROBE=0``        no probe at start-up
  ``EDGE_FER_CACHE_DIR``      where the start-up probe's result is kept
  ``EDGE_FER_PROBE_WRAPPER``  a command put in front of the child Python (e.g. ``qemu-aarch64-static
                              -cpu cortex-a72 -L ROOT``: emulation without binfmt_misc; testing only)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_fer import __version__
from edge_fer.errors import ConfigError, ModelError, SourceError

log = logging.getLogger(__name__)

BACKENDS = ("ai_edge_litert", "tflite_runtime", "tensorflow")  # the order of edge_fer.interpreter.BACKENDS
RUNTIME_DISTS = {
    "ai_edge_litert": ("ai-edge-litert",),
    "tflite_runtime": ("tflite-runtime",),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
}
DEFAULT_TIMEOUT_S = 60.0
CACHE_FILE = "backend-probe.json"
_MARK = "@edge-fer-probe "
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
    "open": "opening the camera",
    "read": "reading a frame",
    "picamera2": "importing picamera2",
    "list": "listing cameras",
    "exit": "exiting, after a good answer",
}

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"


# ------------------------------------------------------------------------------------------------
# Child side: `python -c "...; _child_main(argv)"`. Prints "@edge-fer-probe stage NAME" before each
# risky step and "@edge-fer-probe result {json}" at the end.
# ------------------------------------------------------------------------------------------------


def _say(kind: str, payload: Any) -> None:
    sys.stdout.write(f"{_MARK}{kind} {json.dumps(payload)}\n")
    sys.stdout.flush()


def _stage(name: str) -> None:
    _say("stage", name)


def _max_rss_mb() -> float | None:
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # KiB on Linux
    except Exception:  # pragma: no cover - not on Linux
        return None


def dist_version(*names: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for n in names:
        try:
            return version(n)
        except PackageNotFoundError:
            continue
    return None


def fixed_input(shape: Any, dtype: Any) -> Any:
    """A deterministic model input (no RNG: the same bytes on every machine and numpy version)."""
    import numpy as np

    n = int(np.prod(shape))
    ramp = (np.arange(n, dtype=np.int64) * 37 + 11) % 256
    dt = np.dtype(dtype)
    if dt == np.int8:
        x = (ramp - 128).astype(np.int8)
    elif dt == np.uint8:
        x = ramp.astype(np.uint8)
    else:
        x = (ramp / 255.0).astype(dt)
    return x.reshape(tuple(int(s) for s in shape))


def _probe_backend(a: dict) -> dict:
    import numpy as np

    from edge_fer.interpreter import _import_backend, load_interpreter

    name = a["backend"]
    _stage("import")
    t0 = time.perf_counter()
    try:
        be = _import_backend(name)
    except ImportError as e:
        return {"status": "missing", "error": f"{type(e).__name__}: {e}"}
    t_import = time.perf_counter() - t0
    out: dict[str, Any] = {"version": dist_version(*RUNTIME_DISTS.get(name, ())), "numpy": np.__version__,
                           "import_ms": round(t_import * 1000, 1)}
    data = Path(a["model"]).read_bytes()
    _stage("load")
    t0 = time.perf_counter()
    try:
        loaded = load_interpreter(model_content=data, device="cpu", threads=a.get("threads"), backend=be)
    except Exception as e:  # ModelError and whatever the backend raises
        return {**out, "status": "error", "error": f"{type(e).__name__}: {e}"}
    out["load_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    interp = loaded.interpreter
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    x = fixed_input(inp["shape"], inp["dtype"])
    _stage("invoke")
    try:
        interp.set_tensor(inp["index"], x)
        t0 = time.perf_counter()
        interp.invoke()
        out["invoke_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        y = interp.get_tensor(outp["index"])
    except Exception as e:
        return {**out, "status": "error", "error": f"{type(e).__name__}: {e}"}
    out.update(status="ok", input=f"{list(map(int, inp['shape']))} {np.dtype(inp['dtype']).name}",
               output=np.asarray(y).reshape(-1).tolist(), output_sha256=hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest()[:16],
               max_rss_mb=_max_rss_mb())
    return out


def _probe_edgetpu(a: dict) -> dict:
    from edge_fer.interpreter import _import_backend, edgetpu_library

    lib = edgetpu_library()
    _stage("import")
    try:
        be = _import_backend(a["backend"])
    except ImportError as e:
        return {"status": "error", "error": f"{a['backend']}: {e}", "library": lib}
    if be.load_delegate is None:
        return {"status": "error", "error": f"the {be.name} backend cannot load delegates", "library": lib}
    _stage("dlopen")
    try:
        import ctypes

        ctypes.CDLL(lib)
    except OSError as e:
        return {"status": "absent", "error": str(e), "library": lib}
    _stage("delegate")
    try:
        be.load_delegate(lib)
    except Exception as e:
        return {"status": "error", "error": f"{type(e).__name__}: {e}", "library": lib}
    return {"status": "ok", "library": lib}


def _probe_opencv(a: dict) -> dict:
    import tempfile

    _stage("cv2")
    try:
        import cv2
        import numpy as np
    except ImportError as e:
        return {"status": "missing", "error": f"{type(e).__name__}: {e}"}
    out: dict[str, Any] = {"opencv": cv2.__version__}
    try:
        out["backends"] = sorted({cv2.videoio_registry.getBackendName(b) for b in cv2.videoio_registry.getBackends()})
    except Exception:  # pragma: no cover - very old OpenCV
        out["backends"] = []
    # the default detector's cascade
    _stage("haar")
    try:
        from edge_fer.detect.haar import DEFAULT_CASCADE

        path = Path(cv2.data.haarcascades) / DEFAULT_CASCADE
        ok = path.is_file() and not cv2.CascadeClassifier(str(path)).empty()
        out["haar"] = {"status": "ok" if ok else "error", "path": str(path)}
    except Exception as e:  # no cv2.data / no CascadeClassifier (OpenCV 5)
        out["haar"] = {"status": "error", "error": f"{type(e).__name__}: {e}"}
    video = a.get("video")
    with tempfile.TemporaryDirectory(prefix="edge-fer-doctor-") as tmp:
        if not video:
            _stage("encode")
            video = str(Path(tmp) / "probe.mp4")
            w = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
            if not w.isOpened():
                video = str(Path(tmp) / "probe.avi")
                w = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
            for i in range(10):
                w.write(np.full((48, 64, 3), i * 20, np.uint8))
            w.release()
            out["clip"] = "generated " + ("MPEG-4 (mp4v)" if video.endswith(".mp4") else "MJPG") + " clip"
        else:
            out["clip"] = video
        _stage("decode")
        cap = cv2.VideoCapture(video)
        n, size = 0, None
        try:
            if cap.isOpened():
                out["decoder"] = cap.getBackendName()
                codec = int(cap.get(cv2.CAP_PROP_FOURCC))
                out["fourcc"] = "".join(chr((codec >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00") if codec else None
                while n < int(a.get("frames", 30)):
                    ok, img = cap.read()
                    if not ok or img is None:
                        break
                    n, size = n + 1, f"{img.shape[1]}x{img.shape[0]}"
        finally:
            cap.release()
    out.update(frames=n, size=size, status="ok" if n else "error")
    if not n:
        out["error"] = f"OpenCV decoded no frame from {out['clip']}"
    return out


def _probe_camera(a: dict) -> dict:
    _stage("cv2")
    import cv2

    target = a["target"]
    _stage("open")
    cap = cv2.VideoCapture(target)
    try:
        if not cap.isOpened():
            return {"status": "error", "error": f"OpenCV cannot open camera {target!r}"}
        _stage("read")
        ok, img = cap.read()
        if not ok or img is None:
            return {"status": "noframe", "error": "opened, but no frame came", "decoder": cap.getBackendName()}
        return {"status": "ok", "size": f"{img.shape[1]}x{img.shape[0]}", "decoder": cap.getBackendName()}
    finally:
        cap.release()


def _probe_picamera2(a: dict) -> dict:
    _stage("picamera2")
    try:
        from picamera2 import Picamera2
    except ImportError as e:
        return {"status": "missing", "error": f"{type(e).__name__}: {e}"}
    _stage("list")
    cams = Picamera2.global_camera_info()
    return {"status": "ok" if cams else "none",
            "cameras": [{k: str(v) for k, v in c.items() if k in ("Model", "Location", "Id", "Num")} for c in cams]}


_PROBES = {"backend": _probe_backend, "edgetpu": _probe_edgetpu, "opencv": _probe_opencv,
           "camera": _probe_camera, "picamera2": _probe_picamera2}


def _child_main(argv: list[str]) -> int:
    kind, args = argv[0], json.loads(argv[1])
    try:  # a crash is an expected outcome here: no core dump (slow under emulation, litter everywhere)
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not on Linux
        pass
    try:
        result = _PROBES[kind](args)
    except Exception as e:
        result = {"status": "error", "error": f"{type(e).__name__}: {e}"}
    _say("result", result)
    _stage("exit")  # a crash from here on is in the teardown (interpreter destructors)
    return 0


# ------------------------------------------------------------------------------------------------
# Parent side
# ------------------------------------------------------------------------------------------------


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
            return f"the probe process failed (exit code {self.returncode}) while {self.where}" + (f": {err}" if err else "")
        return str(self.result.get("error") or self.status)


def _child_command() -> list[str]:
    pkg_parent = str(Path(__file__).resolve().parents[1])
    code = (f"import sys; sys.path.append({pkg_parent!r}); "
            "from edge_fer.doctor import _child_main; sys.exit(_child_main(sys.argv[1:]))")
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
        cp = subprocess.run([*_child_command(), kind, json.dumps(args)], capture_output=True, text=True,
                            timeout=timeout, env=env, stdin=subprocess.DEVNULL, errors="replace")
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
        if not line.startswith(_MARK):
            continue
        what, _, payload = line[len(_MARK):].partition(" ")
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


def shipped_model() -> Path | None:
    from importlib import resources

    try:
        p = Path(str(resources.files("edge_fer.models").joinpath("default_int8.tflite")))
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - broken install
        return None
    return p if p.is_file() else None


def importable(name: str) -> bool:
    """Whether a backend's top-level package is installed (found, not imported)."""
    import importlib.util

    top = name.split(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _cpuinfo_describes_arm() -> bool | None:
    """On aarch64: whether /proc/cpuinfo lists ARM cores (None: unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    return "CPU implementer" in text and "CPU part" in text


def backend_fix(name: str, probe: Probe) -> str:
    """What to do about a backend whose probe failed."""
    machine = platform.machine().lower()
    alt = ("install a fallback backend (pip install 'edge-fer[tflite-runtime]'; edge-fer run then uses the one "
           "that works, EDGE_FER_BACKEND=NAME forces one)")
    if probe.status == "crashed" and name == "ai_edge_litert":
        if machine in ("aarch64", "arm64"):
            arm = _cpuinfo_describes_arm()
            if arm is False or arm is None:
                what = "is unreadable" if arm is None else "does not list ARM cores (qemu-user passes the host's through)"
                return (f"/proc/cpuinfo {what}: ai-edge-litert 2.2 and later crash there while creating the "
                        "Interpreter. Run on the device itself with /proc visible (no systemd ProcSubset=pid), or "
                        "pip install 'ai-edge-litert<2.2' (2.1.6 works there), or " + alt)
        return f"pip install 'ai-edge-litert<2.2' (2.1.6 does not crash where 2.2+ did under emulation), or {alt}"
    if probe.status == "crashed":
        return f"reinstall or change the version of {RUNTIME_DISTS[name][0]}, or {alt}"
    if probe.status == "timeout":
        return "the machine may be overloaded (rerun with a longer --timeout), or reinstall the backend"
    if name == "tflite_runtime" and "_ARRAY_API" in str(probe.result.get("error", "")):
        return "tflite-runtime needs numpy<2: pip install 'numpy<2'"
    return f"reinstall {RUNTIME_DISTS[name][0]} (pip install --force-reinstall {RUNTIME_DISTS[name][0]})"


# -- the start-up cache ---------------------------------------------------------------------------


def cache_dir() -> Path:
    """``$EDGE_FER_CACHE_DIR``, systemd's ``$CACHE_DIRECTORY`` / ``$STATE_DIRECTORY``, else
    ``$XDG_CACHE_HOME/edge-fer`` (``~/.cache/edge-fer``)."""
    for var in ("EDGE_FER_CACHE_DIR", "CACHE_DIRECTORY", "STATE_DIRECTORY"):
        v = os.environ.get(var)
        if v:
            return Path(v.split(":")[0])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edge-fer"


def _cpu_description() -> str:
    """The stable lines of /proc/cpuinfo (CPU model and features, not clock speeds): LiteRT 2.2+
    crashes or not depending on what it says."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "unreadable"
    keep = ("model name", "flags", "features", "cpu implementer", "cpu architecture", "cpu variant", "cpu part",
            "cpu revision", "hardware", "model", "processor")
    lines = sorted({ln.strip() for ln in text.splitlines() if ln.split(":")[0].strip().lower() in keep})
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def cache_key(model: Path) -> str:
    """Changes when anything the probe's answer depends on is reinstalled (or the CPU that
    /proc/cpuinfo describes changes)."""
    parts = {
        "cpu": _cpu_description(),
        "edge_fer": __version__, "python": sys.version, "machine": platform.machine(), "platform": sys.platform,
        "dists": {d: dist_version(d) for d in ("ai-edge-litert", "tflite-runtime", "tensorflow", "tensorflow-cpu", "numpy")},
        "model": hashlib.sha256(model.read_bytes()).hexdigest(),
        "wrapper": os.environ.get("EDGE_FER_PROBE_WRAPPER", ""),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _read_cache(key: str) -> dict | None:
    try:
        data = json.loads((cache_dir() / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("key") == key and data.get("backend") in BACKENDS else None


def _write_cache(key: str, backend: str, probes: dict[str, str]) -> None:
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{CACHE_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps({"key": key, "backend": backend, "probes": probes, "edge_fer": __version__,
                                   "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))
        os.replace(tmp, d / CACHE_FILE)
    except OSError as e:
        log.debug("cannot write the backend probe cache in %s: %s", d, e)


def _off(value: str | None) -> bool:
    return (value or "").strip().lower() in ("0", "no", "off", "false")


def startup_backend(timeout: float | None = None) -> str | None:
    """Pick the interpreter backend for this run: the first one (in the runtime's order) whose probe
    in a child process did not crash. Cached per installed versions. Sets it as the preferred backend
    of :mod:`edge_fer.interpreter` and returns its name; ``None`` when the probe does not apply
    (``EDGE_FER_BACKEND`` set, ``EDGE_FER_PROBE=0``, no shipped model, no backend installed: the
    runtime's own selection then says what is wrong). Raises :class:`ModelError` when every
    installed backend crashed."""
    from edge_fer import interpreter

    if os.environ.get("EDGE_FER_BACKEND") or _off(os.environ.get("EDGE_FER_PROBE")):
        return None
    model = shipped_model()
    if model is None:
        return None
    key = cache_key(model)
    cached = _read_cache(key)
    if cached is not None:
        log.debug("interpreter backend %s (probed earlier: %s)", cached["backend"], cache_dir() / CACHE_FILE)
        interpreter.set_preferred_backend(cached["backend"])
        return cached["backend"]
    if timeout is None:
        try:
            timeout = float(os.environ.get("EDGE_FER_PROBE_TIMEOUT", DEFAULT_TIMEOUT_S))
        except ValueError:
            timeout = DEFAULT_TIMEOUT_S
    log.info("probing the interpreter backends in a child process (once per installed version)")
    failures: dict[str, Probe] = {}
    statuses: dict[str, str] = {}
    chosen = None
    for name in BACKENDS:
        if not importable(name):
            statuses[name] = "missing"
            continue
        p = run_probe("backend", {"backend": name, "model": str(model)}, timeout)
        statuses[name] = p.status
        if p.status in ("ok", "error"):  # "error": a Python exception, which the runtime reports itself
            chosen = name
            break
        if p.status == "missing":
            continue
        if p.status != "crashed":  # a timeout, or no child process: inconclusive, keep the usual choice
            log.warning("could not probe the %s interpreter backend (%s); using the usual backend order", name,
                        p.describe_failure())
            return None
        failures[name] = p
        log.warning("the %s interpreter backend %s in a probe process; trying the next backend", name,
                    p.describe_failure())
    if chosen is None:
        if not failures:
            return None  # no backend installed: the runtime says so itself
        first, p = next(iter(failures.items()))
        ver = dist_version(*RUNTIME_DISTS[first]) or "?"
        others = "; ".join(f"{n}: {q.describe_failure()}" for n, q in list(failures.items())[1:])
        raise ModelError(
            f"the {first} interpreter backend ({RUNTIME_DISTS[first][0]} {ver}) {p.describe_failure()} "
            f"(in a probe process, on the shipped model){'; ' + others if others else ''}; no other backend works. "
            f"Fix: {backend_fix(first, p)}. Details: edge-fer doctor"
        )
    if failures:
        log.warning("using the %s interpreter backend (%s did not work here; see edge-fer doctor)", chosen,
                    ", ".join(failures))
    _write_cache(key, chosen, statuses)
    interpreter.set_preferred_backend(chosen)
    return chosen


# -- edge-fer doctor ------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    status: str  # OK WARN FAIL SKIP
    detail: str
    fix: str = ""
    essential: bool = False  # a FAIL here means the default `edge-fer run` cannot work
    data: dict = field(default_factory=dict)


@dataclass
class Report:
    checks: list[Check]
    verdict: str
    summary: str
    backend: str | None
    machine: dict

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == FAIL else 0

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "summary": self.summary, "backend": self.backend, "machine": self.machine,
                "checks": [asdict(c) for c in self.checks]}


def _backend_check(name: str, model: Path, timeout: float) -> tuple[Check, Probe | None]:
    row = f"backend {name}"
    dist = RUNTIME_DISTS[name][0]
    if not importable(name):
        fix = "pip install ai-edge-litert" if name == "ai_edge_litert" else ""
        return Check(row, SKIP, f"not installed ({dist})", fix), None
    p = run_probe("backend", {"backend": name, "model": str(model)}, timeout)
    r = p.result
    ver = r.get("version") or dist_version(*RUNTIME_DISTS[name]) or "?"
    if p.status == "ok":
        detail = (f"{dist} {ver}: model loaded in {r.get('load_ms')} ms, one inference {r.get('invoke_ms')} ms, "
                  f"peak RSS {r.get('max_rss_mb')} MB")
        if name == "tensorflow":
            detail += " (tf.lite: the slow fallback)"
        return Check(row, OK, detail, data={"probe": asdict(p)}), p
    if p.status == "missing":
        return Check(row, SKIP, f"not importable ({r.get('error')})", f"pip install --force-reinstall {dist}",
                     data={"probe": asdict(p)}), p
    return Check(row, FAIL, f"{dist} {ver} {p.describe_failure()}", backend_fix(name, p), data={"probe": asdict(p)}), p


def _v4l2_candidates() -> list[tuple[int, str, str]]:
    """(index, /dev/videoN, name) of the capture nodes worth opening; codec/ISP nodes left out."""
    out = []
    skip = ("codec", "isp", "hevc", "rpivid", "pispbe", "pisp", "rp1-cfe", "unicam", "bcm2835")
    for dev in sorted(Path("/dev").glob("video[0-9]*"), key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0):
        n = dev.name[5:]
        if not n.isdigit():
            continue
        sysd = Path("/sys/class/video4linux") / dev.name
        name = (sysd / "name").read_text().strip() if (sysd / "name").is_file() else "?"
        idx = (sysd / "index").read_text().strip() if (sysd / "index").is_file() else "0"
        if idx != "0" or any(s in name.lower() for s in skip):
            continue
        out.append((int(n), str(dev), name))
    return out


def _camera_checks(timeout: float) -> list[Check]:
    checks = []
    cams = _v4l2_candidates() if sys.platform.startswith("linux") else []
    if not cams:
        checks.append(Check("camera V4L2", SKIP, "no USB/V4L2 camera (/dev/video*) found",
                            "only needed for --source 0: plug in a USB camera; the Pi camera module is --source picamera2"))
    for idx, dev, name in cams[:4]:
        row = f"camera {dev}"
        if not os.access(dev, os.R_OK | os.W_OK):
            checks.append(Check(row, FAIL, f"{name}: no read/write permission",
                                "add the user to the 'video' group (sudo usermod -aG video $USER, then log in again)"))
            continue
        p = run_probe("camera", {"target": idx}, min(timeout, 20.0))
        if p.status == "ok":
            checks.append(Check(row, OK, f"{name}: {p.result.get('size')} frame via {p.result.get('decoder')} (--source {idx})"))
        elif p.status == "noframe":
            checks.append(Check(row, WARN, f"{name}: opened, but no frame came",
                                "is another process using it (the edge-fer service)? stop it and retry"))
        else:
            checks.append(Check(row, FAIL, f"{name}: {p.describe_failure()}",
                                "check the cable and `v4l2-ctl --list-devices`; try another index", data={"probe": asdict(p)}))
    if not importable("picamera2"):
        checks.append(Check("camera picamera2", SKIP, "picamera2 not importable",
                            "only for the Pi camera module: sudo apt install python3-picamera2 and a venv made with "
                            "--system-site-packages (deploy/install-pi.sh does both)"))
        return checks
    p = run_probe("picamera2", {}, min(timeout, 30.0))
    if p.status == "ok":
        models = ", ".join(c.get("Model", "?") for c in p.result.get("cameras", []))
        checks.append(Check("camera picamera2", OK, f"libcamera sees: {models} (--source picamera2)"))
    elif p.status == "none":
        checks.append(Check("camera picamera2", WARN, "picamera2 works but libcamera sees no camera",
                            "check the ribbon cable and camera_auto_detect=1 in /boot/firmware/config.txt; "
                            "`rpicam-hello --list-cameras`"))
    else:
        checks.append(Check("camera picamera2", FAIL, p.describe_failure(),
                            "reinstall python3-picamera2 (apt) and keep numpy<2 in the venv (deploy/install-pi.sh)",
                            data={"probe": asdict(p)}))
    return checks


def _opencv_checks(video: str | None, timeout: float) -> list[Check]:
    p = run_probe("opencv", {"video": video}, timeout)
    r = p.result
    fix_cv = "pip install --force-reinstall 'opencv-python-headless<5'"
    if p.status == "missing":
        return [Check("opencv video", FAIL, f"OpenCV not importable ({r.get('error')})", fix_cv, essential=True)]
    if p.status in ("crashed", "timeout", "failed"):
        return [Check("opencv video", FAIL, p.describe_failure(), fix_cv, essential=True, data={"probe": asdict(p)})]
    checks = []
    dec = f"{r.get('frames')} frames {r.get('size') or ''} decoded from {r.get('clip')}"
    dec += f" ({r.get('fourcc') or '?'} via {r.get('decoder') or '?'}; OpenCV {r.get('opencv')})"
    if p.status == "ok":
        checks.append(Check("opencv video", OK, dec, data={"probe": asdict(p)}))
    else:
        fix = ("this OpenCV build cannot decode that file: convert it (ffmpeg -i in -c:v libx264 out.mp4) or "
               + fix_cv) if video else fix_cv
        checks.append(Check("opencv video", FAIL, str(r.get("error") or dec), fix, essential=True, data={"probe": asdict(p)}))
    h = r.get("haar") or {}
    if h.get("status") == "ok":
        checks.append(Check("opencv haar", OK, "Haar cascade loads (the default --detector haar)"))
    else:
        checks.append(Check("opencv haar", FAIL, f"no usable Haar cascade ({h.get('error') or h.get('path')})",
                            "pip install 'opencv-python-headless<5' (OpenCV 5 has no Haar cascades), or --detector yunet",
                            essential=True))
    return checks


def run_doctor(model: str | None = None, video: str | None = None, backends: list[str] | None = None,
               camera: bool = True, timeout: float = DEFAULT_TIMEOUT_S) -> Report:
    """Every check, each in a child process. Raises only for the user's own mistakes."""
    if timeout <= 0:
        raise ConfigError(f"--timeout must be positive, got {timeout}")
    for b in backends or []:
        if b not in BACKENDS:
            raise ConfigError(f"--backend: unknown interpreter backend {b!r} (choose from {', '.join(BACKENDS)})")
    if model:
        mpath = Path(model)
        if not mpath.is_file():
            raise ModelError(f"--model {model}: no such file")
    else:
        mpath = shipped_model()
        if mpath is None:
            raise ModelError("the shipped model is not installed (reinstall edge-fer) and no --model was given")
    if video and not Path(video).is_file():
        raise SourceError(f"--video {video}: no such file")

    checks: list[Check] = []
    probes: dict[str, Probe | None] = {}
    chosen = None
    for name in BACKENDS:
        if backends and name not in backends:
            continue
        c, p = _backend_check(name, mpath, timeout)
        c.essential = True
        checks.append(c)
        probes[name] = p
        if chosen is None and p is not None and p.status == "ok":
            chosen = name
    # Edge TPU delegate, through the backend the runtime will use
    if chosen is None:
        checks.append(Check("edgetpu delegate", SKIP, "no working interpreter backend to load it with"))
    else:
        p = run_probe("edgetpu", {"backend": chosen}, timeout)
        lib = p.result.get("library", "libedgetpu")
        if p.status == "ok":
            checks.append(Check("edgetpu delegate", OK, f"{lib} loaded and found an Edge TPU (--device auto uses it)"))
        elif p.status == "absent":
            checks.append(Check("edgetpu delegate", SKIP, f"{lib} not installed (only needed for a Coral Edge TPU)",
                                "for a Coral: sudo ./deploy/install-pi.sh --coral"))
        elif p.status == "error":
            checks.append(Check("edgetpu delegate", WARN, f"{lib} is installed but the delegate did not load: "
                                f"{p.result.get('error')}",
                                "plug in the Coral (replug once after installing the udev rules; lsusb shows "
                                "1a6e:089a or 18d1:9302) and check the user is in 'plugdev'; or --device cpu"))
        else:
            checks.append(Check("edgetpu delegate", FAIL, p.describe_failure(),
                                "reinstall libedgetpu1-std (a version matching the runtime), or run with --device cpu",
                                data={"probe": asdict(p)}))
    checks.extend(_opencv_checks(video, timeout))
    if camera:
        checks.extend(_camera_checks(timeout))

    machine = {"edge_fer": __version__, "python": platform.python_version(), "system": platform.system(),
               "machine": platform.machine(), "model": str(mpath),
               "cpuinfo_arm": _cpuinfo_describes_arm() if platform.machine().lower() in ("aarch64", "arm64") else None}
    bad_essential = [c for c in checks if c.essential and c.status == FAIL]
    if chosen is None:
        tried = [c for c in checks if c.name.startswith("backend ")]
        why = "; ".join(f"{c.name[8:]}: {c.detail}" for c in tried) or "none probed"
        verdict, summary = FAIL, f"no interpreter backend works here ({why})"
    elif [c for c in bad_essential if not c.name.startswith("backend ")]:
        verdict = FAIL
        summary = "edge-fer run cannot work: " + "; ".join(f"{c.name}: {c.detail}" for c in bad_essential
                                                         if not c.name.startswith("backend "))
    else:
        ver = dist_version(*RUNTIME_DISTS[chosen]) or "?"
        summary = f"edge-fer run will use the {chosen} backend ({RUNTIME_DISTS[chosen][0]} {ver})"
        first = next((c for c in checks if c.name.startswith("backend ") and c.status != SKIP), None)
        problems = [c for c in checks if c.status in (FAIL, WARN)]
        verdict = WARN if problems or (first and first.name != f"backend {chosen}") else OK
        if problems:
            summary += "; needs attention: " + ", ".join(c.name for c in problems)
    # the daemon's start-up reuses a full probe on the shipped model
    if not model and not backends and chosen is not None:
        statuses = {n: (p.status if p else "missing") for n, p in probes.items()}
        _write_cache(cache_key(mpath), chosen, statuses)
    return Report(checks, verdict, summary, chosen, machine)


def format_report(rep: Report) -> str:
    m = rep.machine
    lines = [f"edge-fer doctor: edge-fer {m['edge_fer']}, Python {m['python']}, {m['system']} {m['machine']}, "
             f"model {Path(m['model']).name}"]
    if m.get("cpuinfo_arm") is False:
        lines.append("note: /proc/cpuinfo does not list ARM cores (emulation?)")
    w = max(len(c.name) for c in rep.checks) if rep.checks else 10
    lines.append(f"{'CHECK'.ljust(w)}  RESULT  DETAIL")
    for c in rep.checks:
        lines.append(f"{c.name.ljust(w)}  {c.status.ljust(6)}  {c.detail}")
        if c.fix and c.status in (FAIL, WARN):
            lines.append(f"{''.ljust(w)}  {'':6}  fix: {c.fix}")
    lines.append(f"verdict: {rep.verdict}: {rep.summary}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - the probes run through _child_command
    sys.exit(_child_main(sys.argv[1:]))
