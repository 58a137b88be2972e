"""The report of ``edge-fer convert`` (``<out>_report.json``) and its terminal summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_fer import jsondoc
from edge_fer.errors import CheckFailed

REPORT_KIND = "convert-report"  # the JSON head: schema edge-fer-convert-report/1 (edge_fer.jsondoc)


@dataclass
class ConvertReport:
    created: str
    source: dict[str, Any]
    outputs: dict[str, str]
    params: dict[str, Any]
    calibration: dict[str, Any]
    evaluation: dict[str, Any]
    float_metrics: dict[str, Any]
    int8_metrics: dict[str, Any]
    agreement: float
    agreement_count: int
    delta: dict[str, Any]
    gate: dict[str, Any]
    size_bytes: int
    parameters: int
    parameters_tflite: int
    macs: int
    latency_ms: dict[str, Any]
    quantization: dict[str, Any]
    all_int8: bool
    op_counts: dict[str, int]
    ops: list[dict[str, Any]]
    edgetpu: dict[str, Any]
    versions: dict[str, str]
    float_size_bytes: int | None = None  # with --float
    decoder: dict[str, Any] | None = None  # with --decoder
    quality: dict[str, Any] | None = None  # with --write-quality-gate
    probability_calibration: dict[str, Any] | None = None  # with --calibrate (the default)

    @property
    def passed(self) -> bool:
        return bool(self.gate["passed"])

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": self.source,
            "outputs": self.outputs,
            "params": self.params,
            "calibration": self.calibration,
            "eval": self.evaluation,
            "float": self.float_metrics,
            "int8": self.int8_metrics,
            "agreement": self.agreement,
            "agreement_count": self.agreement_count,
            "delta": self.delta,
            "gate": self.gate,
            "size_bytes": self.size_bytes,
            "parameters": self.parameters,
            "parameters_tflite": self.parameters_tflite,
            "macs": self.macs,
            "latency_ms": self.latency_ms,
            "quantization": self.quantization,
            "all_int8": self.all_int8,
            "op_counts": self.op_counts,
            "ops": self.ops,
            "edgetpu": self.edgetpu,
            "versions": self.versions,
        }
        for key in ("float_size_bytes", "decoder", "quality", "probability_calibration"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return jsondoc.document(REPORT_KIND, d)


class AccuracyDropError(CheckFailed):
    """The int8 model lost more accuracy than ``--max-drop`` allows (outputs are still written); exit 1."""

    report: ConvertReport | None = None


def summary(m: dict[str, Any]) -> dict[str, Any]:
    """Accuracy, macro-F1 and n of a classification report (what the bundle's metadata carries)."""
    return {"accuracy": round(m["accuracy"], 6), "macro_f1": round(m["macro_f1"], 6), "n": m["n"]}


def format_table(report: ConvertReport) -> str:
    f, q, d = report.float_metrics, report.int8_metrics, report.delta
    ev = report.evaluation
    rows = [
        f"{'':<14}{'float':>10}{'int8':>10}{'change':>12}",
        f"{'accuracy':<14}{100 * f['accuracy']:>9.2f}%{100 * q['accuracy']:>9.2f}%{d['accuracy_points']:>+9.2f} pt",
        f"{'macro-F1':<14}{100 * f['macro_f1']:>9.2f}%{100 * q['macro_f1']:>9.2f}%{d['macro_f1_points']:>+9.2f} pt",
    ]
    for c, pf in f["per_class"].items():
        rows.append(
            f"{'F1 ' + c:<14}{100 * pf['f1']:>9.2f}%{100 * q['per_class'][c]['f1']:>9.2f}%"
            f"{d['per_class_f1_points'][c]:>+9.2f} pt"
        )
    lat = report.latency_ms
    gate = report.gate
    rows += [
        f"agreement (top-1, float vs int8): {100 * report.agreement:.2f}% on {ev['n']} {ev['split']} crops",
        f"size {report.size_bytes:,} B | params {report.parameters:,} | MACs {report.macs:,} | "
        f"latency {lat['p50_ms']:.3f} ms median ({lat['threads']} thread, {lat['runtime']})",
        _edgetpu_line(report.edgetpu),
        _compiler_line(report.edgetpu.get("compiler", {})),
        f"gate: accuracy drop {gate['accuracy_drop_points']:+.2f} pt vs --max-drop {gate['max_drop_points']:.2f}: "
        + ("PASS" if gate["passed"] else "FAIL"),
    ]
    cal = report.probability_calibration
    rows += calibration_lines(cal) if cal else ["calibration: off (--no-calibrate); scores are the raw softmax"]
    return "\n".join(rows)


def calibration_lines(cal: dict[str, Any]) -> list[str]:
    """The terminal summary of a calibration fit (``probability_calibration`` of a report)."""
    if cal.get("skipped"):
        return [f"calibration: skipped, {cal['skipped']}; scores are the raw softmax"]
    b, a, on = cal["before"], cal["after"], cal["fitted_on"]
    if cal.get("temperature") is not None:
        how = f"temperature T={cal['temperature']:.4f} (softmax beta {cal['softmax_beta']:.4f})"
    else:
        how = "per-class scales " + ", ".join(f"{k} {v:.3f}" for k, v in cal["class_scales"].items())
    rows = [f"calibration on {on['n']} {on['split']} faces: {how}"]
    cv = (cal.get("selection") or {}).get("cross_validation")
    if cv:
        rows.append(
            f"chosen by held-out NLL on halves of {on['split']}: "
            + ", ".join(f"{m} {v['heldout_nll']:.4f} (ECE {v['heldout_ece']:.4f})" for m, v in cv.items())
        )
    return rows + [
        f"{'':<16}{'before':>10}{'after':>10}",
        f"{'ECE (' + str(a['bins']) + ' bins)':<16}{b['ece']:>10.4f}{a['ece']:>10.4f}",
        f"{'NLL':<16}{b['nll']:>10.4f}{a['nll']:>10.4f}",
        f"{'mean top prob':<16}{b['mean_confidence']:>10.4f}{a['mean_confidence']:>10.4f}",
        f"{'accuracy':<16}{100 * b['accuracy']:>9.2f}%{100 * a['accuracy']:>9.2f}%"
        f"  (top-1 agreement {100 * cal['argmax_agreement']:.2f}%)",
    ]


def _edgetpu_line(tpu: dict[str, Any]) -> str:
    if tpu["compatible"]:
        return f"Edge TPU audit: all {tpu['ops_total']} ops mappable, all tensors int8"
    return (
        f"Edge TPU audit: {tpu['ops_expected_on_tpu']}/{tpu['ops_total']} ops before the first unmappable one; "
        f"{len(tpu['problems'])} problem(s), e.g. {tpu['problems'][0]}"
    )


def _compiler_line(comp: dict[str, Any]) -> str:
    if comp.get("available") is False:
        return comp["message"]
    if comp.get("ran"):
        return f"edgetpu_compiler exit {comp['returncode']}: {comp.get('model')} (log {comp.get('log')})"
    return f"edgetpu_compiler: {comp.get('error') or comp.get('message', 'not run')}"
