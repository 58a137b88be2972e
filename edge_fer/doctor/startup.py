"""The daemon's start-up backend choice (:func:`startup_backend`, called by ``edge-fer run``): the
backend probe of :mod:`edge_fer.doctor.probe`, once per installed set of versions, its answer cached
as JSON in :func:`cache_dir`; it tells :mod:`edge_fer.interpreter` which backend to use, so a backend
that kills the process is skipped for the next one that works, or the run ends with one clear error."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

from edge_fer import __version__, fsutil
from edge_fer.doctor.checks import backend_fix
from edge_fer.doctor.installed import BACKENDS, RUNTIME_DISTS, dist_version, importable, shipped_model
from edge_fer.doctor.probe import DEFAULT_TIMEOUT_S, Probe, run_probe
from edge_fer.errors import EdgeFerError, ModelError
from edge_fer.fsutil import atomic_write_json

log = logging.getLogger(__name__)

CACHE_FILE = "backend-probe.json"


def cache_dir() -> Path:
    """Where the probe's result is kept: edge-fer's cache folder, or the service's own folders under
    systemd (:func:`edge_fer.fsutil.cache_dir`)."""
    return fsutil.cache_dir(service_dirs=True)


def _cpu_description() -> str:
    """The stable lines of /proc/cpuinfo (CPU model and features, not clock speeds): LiteRT 2.2+
    crashes or not depending on what it says."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "unreadable"
    keep = (
        "model name",
        "flags",
        "features",
        "cpu implementer",
        "cpu architecture",
        "cpu variant",
        "cpu part",
        "cpu revision",
        "hardware",
        "model",
        "processor",
    )
    lines = sorted({ln.strip() for ln in text.splitlines() if ln.split(":")[0].strip().lower() in keep})
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def cache_key(model: Path) -> str:
    """Changes when anything the probe's answer depends on is reinstalled (or the CPU that
    /proc/cpuinfo describes changes)."""
    parts = {
        "cpu": _cpu_description(),
        "edge_fer": __version__,
        "python": sys.version,
        "machine": platform.machine(),
        "platform": sys.platform,
        "dists": {
            d: dist_version(d) for d in ("ai-edge-litert", "tflite-runtime", "tensorflow", "tensorflow-cpu", "numpy")
        },
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


def write_cache(key: str, backend: str, probes: dict[str, str]) -> None:
    """Remember the chosen backend (never fails: without the cache the next start probes again)."""
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            d / CACHE_FILE,
            {
                "key": key,
                "backend": backend,
                "probes": probes,
                "edge_fer": __version__,
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=1,
        )
    except (OSError, EdgeFerError) as e:
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
            log.warning(
                "could not probe the %s interpreter backend (%s); using the usual backend order",
                name,
                p.describe_failure(),
            )
            return None
        failures[name] = p
        log.warning(
            "the %s interpreter backend %s in a probe process; trying the next backend", name, p.describe_failure()
        )
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
        log.warning(
            "using the %s interpreter backend (%s did not work here; see edge-fer doctor)", chosen, ", ".join(failures)
        )
    write_cache(key, chosen, statuses)
    interpreter.set_preferred_backend(chosen)
    return chosen
