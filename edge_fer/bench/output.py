"""The bench reports as files: the JSON report and the latency-distribution plot."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from edge_fer import jsondoc
from edge_fer.bench.report import ModelRow, ModelsReport, PipelineReport
from edge_fer.errors import MissingExtraError, OutputError
from edge_fer.fsutil import atomic_write_bytes
from edge_fer.pipeline import STAGES


def write_json(report: Any, path: str | Path) -> None:
    """A report (its ``to_dict``: no raw per-frame samples, they are for the plot) or a plain dict,
    under the common head (:mod:`edge_fer.jsondoc`, ``edge-fer-bench/1``); ``-``: stdout. A folder
    or file that cannot be written is an :class:`OutputError` (exit 74)."""
    body = report.to_dict() if hasattr(report, "to_dict") else report
    jsondoc.write(path, jsondoc.document("bench", body), mkdir=True)


def plot(report: PipelineReport | ModelsReport, path: str | Path) -> None:
    """Per-stage latency distributions (box plots, log scale) and, for the pipeline, the per-frame
    end-to-end latency with the budget line. Needs matplotlib (the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise MissingExtraError("--plot", "plot", e.name or "matplotlib") from None
    p = Path(path)
    fig = _plot_pipeline(plt, report) if isinstance(report, PipelineReport) else _plot_models(plt, report)
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=_plot_format(p), dpi=110)
    finally:
        plt.close(fig)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot write {p}: {e.strerror or e}") from None
    atomic_write_bytes(p, buf.getvalue())  # whole or not at all; a device or FIFO is written through


def _plot_format(p: Path) -> str:
    """The image format from ``p``'s suffix (matplotlib's choice when saving to a path), PNG without one."""
    ext = p.suffix.lower().lstrip(".")
    return ext if ext in {"png", "svg", "pdf", "jpg", "jpeg", "eps", "ps", "webp", "tif", "tiff"} else "png"


def _plot_pipeline(plt: Any, report: PipelineReport) -> Any:
    s = report.samples or {}
    names = [*STAGES, "end_to_end"]
    data = [np.maximum(np.asarray(s.get(n, [0.0])), 1e-4) for n in names]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.2, 1]})
    a1.boxplot(data, whis=(1, 99), showfliers=True, flierprops={"markersize": 2, "alpha": 0.4})
    a1.set_xticks(range(1, len(names) + 1), [n.replace("_", "-") for n in names], rotation=20)
    a1.set_yscale("log")
    a1.set_ylabel("ms per frame (log)")
    a1.set_title("per-stage latency (box: p25-p75, whiskers: p1-p99)")
    e = np.asarray(s.get("end_to_end", []))
    a2.plot(np.arange(len(e)), e, lw=0.8, label="end-to-end")
    if "detect" in s:
        a2.plot(np.arange(len(e)), s["detect"], lw=0.6, alpha=0.7, label="detect")
    if report.budget:
        a2.axhline(report.budget.budget_ms, color="red", ls="--", lw=1, label="budget")
    a2.set_xlabel("measured frame")
    a2.set_ylabel("ms")
    a2.set_title(f"{report.fps:.1f} frames/s")
    a2.legend(fontsize=8)
    c = report.config
    fig.suptitle(
        f"edge-fer bench: {Path(str(report.source)).name} ({c.detector}, every {c.detect_every}, "
        f"scale {c.detect_scale})",
        fontsize=10,
    )
    return fig


def _plot_models(plt: Any, report: ModelsReport) -> Any:
    rows = [r for r in report.models if isinstance(r, ModelRow) and r.samples]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rows) + 2), 4.5))
    if rows:
        ax.boxplot([r.samples for r in rows], whis=(1, 99), showfliers=False)
        ax.set_xticks(range(1, len(rows) + 1), [f"{r.name}\n{r.format}, t={r.threads}" for r in rows], fontsize=8)
    if report.budget:
        ax.axhline(report.budget.budget_ms, color="red", ls="--", lw=1)
    ax.set_ylabel("ms per inference")
    ax.set_title(f"classifier latency, batch {report.batch} (whiskers p1-p99)")
    return fig
