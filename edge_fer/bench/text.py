"""The bench reports as terminal tables."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_fer.bench.report import ModelsReport, PipelineBudget, PipelineReport, SkippedModel, Verdict


def num(v: Any, nd: int = 2) -> str:
    """A table cell: floats with ``nd`` decimals, None as ``-``."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(value: Any) -> str:
    """``str(value)`` with control characters escaped (``\\n``, ``\\t``, ``\\x1b``): a file name
    with a line break stays on its row, and an escape sequence in it is not run by the terminal. A
    byte of a file name that is not UTF-8 is written as ``\\xNN`` (:func:`edge_fer.fsutil.path_text`),
    so printing it cannot fail."""
    from edge_fer.fsutil import path_text

    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], path_text(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align_left: int = 1) -> list[str]:
    """Aligned columns (the first ``align_left`` to the left, the rest to the right) under a rule."""
    cells = [[printable(h) for h in headers]] + [[printable(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for j, r in enumerate(cells):
        parts = [c.ljust(widths[i]) if i < align_left else c.rjust(widths[i]) for i, c in enumerate(r)]
        out.append("  ".join(parts).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def machine_line(m: dict[str, Any]) -> str:
    rt = m.get("runtime") or {}
    board = f"{m['board']}, " if m.get("board") else ""
    load = m.get("load_avg")
    return (
        f"machine: {board}{m.get('cpu')} ({m.get('arch')}"
        + (f"; {' '.join(m['cpu_flags'])}" if m.get("cpu_flags") else "")
        + f"), {m.get('cores')} cores ({m.get('usable_cores')} usable), "
        f"Python {m.get('python')}, OpenCV {m.get('opencv')}, "
        f"runtime {rt.get('backend')} {rt.get('version') or ''}".rstrip()
        + f", delegate {rt.get('delegate', '-')}, threads {threads_text(rt.get('threads', '-'))}"
        + (f", load avg {' '.join(str(x) for x in load)}" if load else "")
    )


def threads_text(t: Any) -> str:
    """A thread count as the tables show it: 0 is the interpreter's default."""
    if isinstance(t, list):
        return ",".join(threads_text(x) for x in t)
    return "default" if t == 0 else str(t)


def _latency_row(name: str, s: dict[str, float], share: str) -> list[str]:
    return [name, *(num(s[k], 3) for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")), share]


def format_pipeline(rep: PipelineReport) -> str:
    c, m = rep.config, rep.model
    lines = [
        f"edge-fer bench: {rep.source}: {rep.frames} frames measured (+{rep.warmup_frames} warm-up"
        f"{', ' + str(rep.loops) + ' passes' if rep.loops > 1 else ''})",
        f"config: detector {c.detector} every {c.detect_every} at scale {c.detect_scale}"
        f"{', full frame every ' + str(c.full_every) + ' (windows between)' if c.full_every else ''}, model "
        f"{Path(str(c.model)).name} ({m.format}, {m.size_bytes / 1024:.0f} KiB), "
        f"device {c.device}, threads {threads_text(c.threads)}",
        "",
    ]
    rows = [_latency_row(name, s, f"{100 * s['share']:.1f}%") for name, s in rep.stages.items()]
    rows.append(_latency_row("end-to-end", rep.end_to_end, "100%"))
    lines += table(["stage (ms)", "mean", "p50", "p90", "p99", "max", "share"], rows)
    cpu = rep.cpu
    lines += [
        "",
        f"{rep.fps:.1f} frames/s, {rep.faces_per_s:.1f} faces/s ({rep.faces} faces in {rep.frames_with_faces}"
        f" of {rep.frames} frames, detection ran on {rep.detect_runs}), dropped {rep.dropped_frames}",
        f"CPU {cpu.process_s:.2f} s ({cpu.ms_per_frame:.2f} ms/frame, {100 * cpu.utilization:.0f}% of one core), "
        f"peak RSS {rep.peak_rss_mb:.0f} MB, first frame {rep.startup_ms.first_frame:.1f} ms",
        machine_line(rep.machine),
    ]
    if rep.budget:
        lines += ["", *format_budget(rep.budget)]
    return "\n".join(lines)


def _pass(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _verdict_row(name: str, v: Verdict) -> list[str]:
    return [name, num(v.value_ms, 3), f"{v.headroom_ms:+.3f}", f"{v.headroom_pct:+.1f}%", _pass(v.passed)]


def format_budget(b: PipelineBudget) -> list[str]:
    pct = b.percentile
    lines = [f"real-time budget: {b.budget_ms:.2f} ms/frame ({b.target_fps:.1f} frames/s), judged at {pct}"]
    rows = [_verdict_row(name, v) for name, v in b.stages.items()]
    rows.append(_verdict_row("end-to-end", b.end_to_end))
    rows.append(
        ["frames/s", num(b.fps, 1), f"{b.fps - b.target_fps:+.1f}", f"{b.fps_headroom_pct:+.1f}%", _pass(b.fps_pass)]
    )
    lines += table(["check", f"{pct} ms", "headroom ms", "headroom", "verdict"], rows)
    lines.append(f"overall: {_pass(b.passed)}")
    return lines


def format_models(rep: ModelsReport) -> str:
    lines = [f"edge-fer bench --model-only: batch {rep.batch}, {rep.warmup_runs} warm-up + {rep.runs} timed runs", ""]
    rows = []
    budget = rep.budget
    for i, r in enumerate(rep.models):
        acc = getattr(r, "accuracy", None)
        head = [
            r.name,
            r.format,
            f"{r.size_bytes / 1024:.0f}",
            "-" if acc is None else f"{100 * acc:.1f}%",
            threads_text(r.threads),
        ]
        if isinstance(r, SkippedModel):
            rows.append([*head, "-", "-", "-", "-", "-", "-", "skipped"] + ([""] if budget else []))
            continue
        lat, inv = r.latency, r.invoke
        row = [
            *head,
            num(r.init_ms, 1),
            num(r.first_inference_ms, 3),
            num(lat["p50_ms"], 4),
            num(lat["p90_ms"], 4),
            num(lat["p99_ms"], 4),
            num(inv["p50_ms"], 4),
            f"{r.inferences_per_s:.0f}",
        ]
        if budget:
            v = budget.models[i]
            row.append("-" if v is None else f"{_pass(v.passed)} {v.headroom_pct:+.0f}%")
        rows.append(row)
    headers = [
        "model",
        "format",
        "KiB",
        "accuracy",
        "threads",
        "init ms",
        "first ms",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "invoke p50",
        "inf/s",
    ] + ([f"budget ({budget.percentile})"] if budget else [])
    lines += table(headers, rows)
    for r in rep.models:
        if isinstance(r, SkippedModel):
            lines.append(f"skipped {r.name} (threads {threads_text(r.threads)}): {r.error}")
    splits = {s for r in rep.models if (s := getattr(r, "accuracy_split", None))}
    if splits:
        lines.append(f"accuracy from the bundles' metadata ({', '.join(sorted(splits))})")
    if budget:
        lines.append(f"budget {budget.budget_ms:.2f} ms per inference: overall {_pass(budget.passed)}")
    lines.append(machine_line(rep.machine))
    return "\n".join(lines)
