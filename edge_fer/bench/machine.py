"""The machine a benchmark ran on: CPU, board, cores, library versions, the interpreter runtime, load."""

from __future__ import annotations

import os
import platform
import resource
import sys
from typing import Any

import numpy as np

from edge_fer.doctor.installed import RUNTIME_DISTS, dist_version


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return ""


def _cpu_model() -> str:
    info = _read("/proc/cpuinfo")
    for k in ("model name", "Hardware", "Model", "cpu model", "Processor"):
        for line in info.splitlines():
            name, _, v = line.partition(":")
            if name.strip() == k and v.strip():
                return v.strip()
    return platform.processor() or platform.machine() or "unknown"


# The instruction-set extensions that decide how fast int8 convolutions run (XNNPACK picks its kernels
# by them): x86 AVX2, AVX-512 and the VNNI dot products; ARM's dot product (sdot) and int8 matrix
# multiply. The same bundle can be several times faster on a CPU that has them.
INT8_ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)


def cpu_flags() -> list[str]:
    """The :data:`INT8_ISA_FLAGS` this CPU reports in /proc/cpuinfo (x86 ``flags``, ARM ``Features``)."""
    have: set[str] = set()
    for line in _read("/proc/cpuinfo").splitlines():
        name, _, v = line.partition(":")
        if name.strip() in ("flags", "Features"):
            have.update(v.split())
    return [f for f in INT8_ISA_FLAGS if f in have]


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (1024 * 1024) if sys.platform == "darwin" else r / 1024, 1)  # bytes on macOS, KiB on Linux


def runtime_version(backend: str | None) -> str | None:
    return dist_version(*RUNTIME_DISTS.get(backend or "", ()))


def runtime_info(classifier: Any | None) -> dict[str, Any]:
    if classifier is None:
        return {}
    backend = getattr(classifier, "backend", None)
    device = getattr(classifier, "device", None)
    threads = getattr(classifier, "threads", None)
    return {
        "backend": backend,
        "version": runtime_version(backend),
        "delegate": "edgetpu" if device == "edgetpu" else "none (CPU kernels; XNNPACK where the runtime applies it)",
        "device": device,
        "threads": int(threads or 0),  # 0: the interpreter's default
    }


def machine_info(classifier: Any | None = None) -> dict[str, Any]:
    """CPU model, board (a Pi's /proc/device-tree/model), cores, Python, OpenCV, runtime and load."""
    import cv2

    from edge_fer import __version__
    from edge_fer.interpreter import usable_cores

    mem = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1024
    return {
        "cpu": _cpu_model(),
        "cpu_flags": cpu_flags(),
        "board": _read("/proc/device-tree/model") or None,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_mb": mem or None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "edge_fer": __version__,
        "runtime": runtime_info(classifier),
        "load_avg": loadavg(),
    }
