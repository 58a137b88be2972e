"""The Prometheus text exposition (format 0.0.4) of the runtime's status and the sinks' counters:
the HTTP sink's ``/metrics`` body (:func:`render_metrics`)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from edge_fer.pipeline import STAGES

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_QUANTILES = (("p50_ms", "0.5"), ("p90_ms", "0.9"), ("p99_ms", "0.99"))


def _fmt(value: Any) -> str:
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _label_value(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kw: Any) -> str:
    if not kw:
        return ""
    return "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in kw.items()) + "}"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._declared: set[str] = set()

    def metric(self, name: str, mtype: str, help_: str, value: Any, **labels: Any) -> None:
        if value is None:
            return
        try:
            text = _fmt(value)
        except (TypeError, ValueError):
            return
        if name not in self._declared:
            self._declared.add(name)
            self.lines.append(f"# HELP {name} {help_}")
            self.lines.append(f"# TYPE {name} {mtype}")
        self.lines.append(f"{name}{_labels(**labels)} {text}")


def render_metrics(
    status: Mapping[str, Any] | None,
    sinks: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    now: float | None = None,
    status_error: bool = False,
) -> str:
    """The ``/metrics`` body. Names (all prefixed ``edge_fer_``):

    ``up`` (1 while a status is available), ``fps``, ``frames_total``, ``faces_total``,
    ``low_quality_faces_total``, ``dropped_frames_total``, ``errors_total``, ``tracks``, ``uptime_seconds``,
    ``last_frame_age_seconds``, ``info{source,model}``,
    ``stage_latency_seconds{stage,quantile="0.5|0.9|0.99"}``, ``stage_latency_mean_seconds{stage}``,
    ``stage_latency_max_seconds{stage}`` (gauges over the pipeline's recent window, converted from ms),
    ``sink_sent_total{sink}``, ``sink_dropped_total{sink}``, ``sink_errors_total{sink}``, ``sink_queued{sink}``,
    ``sink_connected{sink}``.
    """
    now = time.time() if now is None else now
    w = _Writer()
    st = status or {}
    w.metric(
        "edge_fer_up",
        "gauge",
        "1 when the pipeline reports its status, 0 otherwise.",
        0 if (status is None or status_error) else 1,
    )
    w.metric("edge_fer_fps", "gauge", "Frames processed per second (recent window).", st.get("fps"))
    w.metric("edge_fer_frames_total", "counter", "Frames processed since start.", st.get("frames"))
    w.metric("edge_fer_faces_total", "counter", "Faces detected since start.", st.get("faces"))
    if st.get("low_quality_faces") is not None:
        w.metric(
            "edge_fer_low_quality_faces_total",
            "counter",
            "Face crops the quality gate marked low quality (reconstruction error above its threshold).",
            st.get("low_quality_faces"),
        )
    w.metric(
        "edge_fer_dropped_frames_total",
        "counter",
        "Frames dropped by the source to stay on the latest frame.",
        st.get("dropped_frames"),
    )
    w.metric("edge_fer_errors_total", "counter", "Errors in the pipeline since start.", st.get("errors"))
    w.metric("edge_fer_tracks", "gauge", "Faces currently tracked.", st.get("tracks"))
    w.metric("edge_fer_uptime_seconds", "gauge", "Seconds since the pipeline started.", st.get("uptime_s"))
    last = st.get("last_frame_ts")
    if last is not None:
        w.metric(
            "edge_fer_last_frame_age_seconds",
            "gauge",
            "Seconds since the last processed frame.",
            max(0.0, now - float(last)),
        )
    if status is not None:
        w.metric(
            "edge_fer_info",
            "gauge",
            "Source and model in use (value is always 1).",
            1,
            source=st.get("source", ""),
            model=st.get("model", ""),
        )
    stages = st.get("stages") or {}
    if isinstance(stages, Mapping):
        ordered = [s for s in STAGES if s in stages] + sorted(s for s in stages if s not in STAGES)
        for stage in ordered:
            q = stages[stage] or {}
            for key, quant in _QUANTILES:
                if q.get(key) is not None:
                    w.metric(
                        "edge_fer_stage_latency_seconds",
                        "gauge",
                        "Per-stage latency quantiles over the recent window, seconds.",
                        float(q[key]) / 1000.0,
                        stage=stage,
                        quantile=quant,
                    )
        for key, what in (("mean", "mean"), ("max", "maximum")):
            for stage in ordered:
                q = stages[stage] or {}
                if q.get(f"{key}_ms") is not None:
                    w.metric(
                        f"edge_fer_stage_latency_{key}_seconds",
                        "gauge",
                        f"Per-stage {what} latency over the recent window, seconds.",
                        float(q[f"{key}_ms"]) / 1000.0,
                        stage=stage,
                    )
    for key, mtype, help_ in (
        ("sent", "counter", "Events delivered by the sink."),
        ("dropped", "counter", "Events the sink dropped (queue full, gave up)."),
        ("errors", "counter", "Transport errors seen by the sink (failed connects, publish errors)."),
        ("queued", "gauge", "Events waiting in the sink's queue."),
        ("inflight", "gauge", "Events handed to the server and not yet acknowledged."),
        ("connected", "gauge", "1 while the sink is connected to its server and it acknowledges."),
        ("stalled", "gauge", "1 while the server is connected but acknowledges nothing (frozen, half-open)."),
    ):
        suffix = "_total" if mtype == "counter" else ""
        for sink_name, s in (sinks or {}).items():
            if isinstance(s, Mapping) and key in s:
                w.metric(f"edge_fer_sink_{key}{suffix}", mtype, help_, s[key], sink=sink_name)
    return "\n".join(w.lines) + "\n"
