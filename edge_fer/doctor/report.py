"""``edge-fer doctor``: every check, a verdict (OK / WARN / FAIL: the default ``edge-fer run`` cannot
work here) and the table."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from edge_fer import __version__
from edge_fer.doctor.checks import (
    FAIL,
    OK,
    SKIP,
    WARN,
    Check,
    backend_check,
    camera_checks,
    cpuinfo_describes_arm,
    edgetpu_check,
    opencv_checks,
)
from edge_fer.doctor.installed import (
    BACKENDS,
    RUNTIME_DISTS,
    dist_version,
    shipped_model,
)
from edge_fer.doctor.probe import DEFAULT_TIMEOUT_S, Probe
from edge_fer.doctor.startup import cache_key, write_cache
from edge_fer.errors import ConfigError, ModelError, SourceError


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
        return {
            "verdict": self.verdict,
            "summary": self.summary,
            "backend": self.backend,
            "machine": self.machine,
            "checks": [asdict(c) for c in self.checks],
        }


def run_doctor(
    model: str | None = None,
    video: str | None = None,
    backends: list[str] | None = None,
    camera: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Report:
    """Every check, each in a child process. Raises only for the user's own mistakes."""
    if timeout <= 0:
        raise ConfigError(f"--timeout must be positive, got {timeout}")
    for b in backends or []:
        if b not in BACKENDS:
            raise ConfigError(f"--backend: unknown interpreter backend {b!r} (choose from {', '.join(BACKENDS)})")
    if model:
        from edge_fer.fsutil import check_model_file

        mpath = Path(model)
        check_model_file(mpath, "--model")  # a FIFO, a folder, a device: said as such
        with open(mpath, "rb") as f:
            head = f.read(8)
        if head[4:8] != b"TFL3":  # the file is the problem, not this machine's backends
            raise ModelError(f"--model {model}: not a TFLite model (no 'TFL3' file identifier)")
    else:
        shipped = shipped_model()
        if shipped is None:
            raise ModelError("the shipped model is not installed (reinstall edge-fer) and no --model was given")
        mpath = shipped
    if video and not Path(video).is_file():
        raise SourceError(f"--video {video}: no such file")

    checks: list[Check] = []
    probes: dict[str, Probe | None] = {}
    chosen = None
    for name in BACKENDS:
        if backends and name not in backends:
            continue
        c, p = backend_check(name, mpath, timeout)
        c.essential = True
        checks.append(c)
        probes[name] = p
        if chosen is None and p is not None and p.status == "ok":
            chosen = name
    checks.append(edgetpu_check(chosen, timeout))
    checks.extend(opencv_checks(video, timeout))
    if camera:
        checks.extend(camera_checks(timeout))

    machine = {
        "edge_fer": __version__,
        "python": platform.python_version(),
        "system": platform.system(),
        "machine": platform.machine(),
        "model": str(mpath),
        "cpuinfo_arm": cpuinfo_describes_arm() if platform.machine().lower() in ("aarch64", "arm64") else None,
    }
    verdict, summary = _verdict(checks, chosen)
    # the daemon's start-up reuses a full probe on the shipped model
    if not model and not backends and chosen is not None:
        statuses = {n: (p.status if p else "missing") for n, p in probes.items()}
        write_cache(cache_key(mpath), chosen, statuses)
    return Report(checks, verdict, summary, chosen, machine)


def _verdict(checks: list[Check], chosen: str | None) -> tuple[str, str]:
    """FAIL when no backend works or an essential check failed, WARN when anything needs attention
    (or the runtime's first backend is not the one that works), else OK; with the one-line summary."""
    bad_essential = [c for c in checks if c.essential and c.status == FAIL]
    if chosen is None:
        tried = [c for c in checks if c.name.startswith("backend ")]
        why = "; ".join(f"{c.name[8:]}: {c.detail}" for c in tried) or "none probed"
        refused = [c for c in tried if "ModelError" in c.detail]
        if refused and all("ModelError" in c.detail or c.status == SKIP for c in tried):
            # every backend that loads refuses the model: the model file is the problem, not the runtimes
            verdict, summary = FAIL, f"the model does not load ({refused[0].detail})"
        else:
            verdict, summary = FAIL, f"no interpreter backend works here ({why})"
    elif [c for c in bad_essential if not c.name.startswith("backend ")]:
        verdict = FAIL
        summary = "edge-fer run cannot work: " + "; ".join(
            f"{c.name}: {c.detail}" for c in bad_essential if not c.name.startswith("backend ")
        )
    else:
        ver = dist_version(*RUNTIME_DISTS[chosen]) or "?"
        summary = f"edge-fer run will use the {chosen} backend ({RUNTIME_DISTS[chosen][0]} {ver})"
        first = next((c for c in checks if c.name.startswith("backend ") and c.status != SKIP), None)
        problems = [c for c in checks if c.status in (FAIL, WARN)]
        verdict = WARN if problems or (first and first.name != f"backend {chosen}") else OK
        if problems:
            summary += "; needs attention: " + ", ".join(c.name for c in problems)
    return verdict, summary


def format_report(rep: Report) -> str:
    m = rep.machine
    lines = [
        f"edge-fer doctor: edge-fer {m['edge_fer']}, Python {m['python']}, {m['system']} {m['machine']}, "
        f"model {Path(m['model']).name}"
    ]
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
