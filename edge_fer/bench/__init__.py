"""The latency benchmark behind ``edge-fer bench``: the real pipeline, every stage timed per frame.

Two modes, one report family (dataclasses whose ``to_dict`` is the JSON file, :mod:`.report`):

* **pipeline** (:func:`bench_pipeline`, :mod:`.run_pipeline`): the real pipeline from the run config,
  per frame the seven stages it times itself (:data:`~edge_fer.pipeline.STAGES`: capture, detect,
  preprocess, classify, quality, track, sink) plus the end-to-end time of the step.
* **model** (:func:`bench_models`, :mod:`.run_model`): the classifier alone, the way TFLite's
  ``benchmark_model`` does it, for several bundles and thread counts.

Around them: the machine they ran on (:mod:`.machine`), what a bundle is (:mod:`.bundle`), the
real-time budget (:mod:`.budget`), the terminal tables (:mod:`.text`), the JSON file and the plot
(:mod:`.output`). ``--compare fer`` runs :mod:`.compare_fer` (:mod:`.peers`).

Percentiles are :func:`edge_fer.stats.summarize_ms` (numpy's linear interpolation), so
``p50 <= p90 <= p99 <= max`` always holds. Nothing here imports TensorFlow.
"""

from edge_fer.bench.budget import BUDGET_PERCENTILES, budget_ms_from, evaluate_budget, evaluate_model_budget
from edge_fer.bench.bundle import bundle_accuracy
from edge_fer.bench.machine import machine_info
from edge_fer.bench.output import plot, write_json
from edge_fer.bench.peers import load_peer
from edge_fer.bench.report import SCHEMA, ModelsReport, PipelineReport
from edge_fer.bench.run_model import bench_models, parse_threads
from edge_fer.bench.run_pipeline import RecordingTimes, bench_pipeline
from edge_fer.bench.text import format_models, format_pipeline

__all__ = [
    "BUDGET_PERCENTILES",
    "SCHEMA",
    "ModelsReport",
    "PipelineReport",
    "RecordingTimes",
    "bench_models",
    "bench_pipeline",
    "budget_ms_from",
    "bundle_accuracy",
    "evaluate_budget",
    "evaluate_model_budget",
    "format_models",
    "format_pipeline",
    "load_peer",
    "machine_info",
    "parse_threads",
    "plot",
    "write_json",
]
