"""The real-time budget: PASS/FAIL with the headroom, per stage, end to end and in frames/s."""

from __future__ import annotations

from edge_fer.bench.report import ModelBudget, ModelRow, ModelsReport, PipelineBudget, PipelineReport, Verdict
from edge_fer.errors import ConfigError

BUDGET_PERCENTILES = ("p50", "p90", "p99", "max")


def budget_ms_from(target_fps: float | None, budget_ms: float | None) -> float | None:
    if target_fps is not None and budget_ms is not None:
        raise ConfigError("give --target-fps or --budget-ms, not both")
    if target_fps is not None:
        if target_fps <= 0:
            raise ConfigError(f"--target-fps must be > 0, got {target_fps}")
        return 1000.0 / target_fps
    if budget_ms is not None:
        if budget_ms <= 0:
            raise ConfigError(f"--budget-ms must be > 0, got {budget_ms}")
        return float(budget_ms)
    return None


def _stat_key(percentile: str) -> str:
    if percentile not in BUDGET_PERCENTILES:
        raise ConfigError(f"--budget-percentile must be one of {', '.join(BUDGET_PERCENTILES)}, got {percentile!r}")
    return f"{percentile}_ms"


def _verdict(value: float, budget: float) -> Verdict:
    head = budget - value
    return Verdict(round(value, 4), round(head, 4), round(100.0 * head / budget, 1), bool(value <= budget))


def evaluate_budget(report: PipelineReport, budget_ms: float, percentile: str = "p99") -> PipelineBudget:
    """PASS/FAIL per stage (the stage alone against the whole frame budget) and overall (end-to-end
    latency at ``percentile`` within the budget and frames/s at least ``1000 / budget_ms``)."""
    key = _stat_key(percentile)
    stages = {name: _verdict(st[key], budget_ms) for name, st in report.stages.items()}
    e2e = _verdict(report.end_to_end[key], budget_ms)
    target_fps = 1000.0 / budget_ms
    fps_pass = bool(report.fps >= target_fps)
    return PipelineBudget(
        budget_ms=round(budget_ms, 4),
        target_fps=round(target_fps, 3),
        percentile=percentile,
        stages=stages,
        end_to_end=e2e,
        fps=report.fps,
        fps_pass=fps_pass,
        fps_headroom_pct=round(100.0 * (report.fps - target_fps) / target_fps, 1),
        passed=bool(e2e.passed and fps_pass and all(v.passed for v in stages.values())),
    )


def evaluate_model_budget(report: ModelsReport, budget_ms: float, percentile: str = "p99") -> ModelBudget:
    """PASS/FAIL per (bundle, threads) row: its latency at ``percentile`` within ``budget_ms``."""
    key = _stat_key(percentile)
    rows = [_verdict(r.latency[key], budget_ms) if isinstance(r, ModelRow) else None for r in report.models]
    ok = [v for v in rows if v is not None]
    return ModelBudget(
        budget_ms=round(budget_ms, 4),
        target_fps=round(1000.0 / budget_ms, 3),
        percentile=percentile,
        models=rows,
        passed=bool(ok) and all(v.passed for v in ok),
    )
