"""The options of ``edge-fer convert``: one schema (default, range/choices, flag, help per field).

The CLI flags are derived from it (:func:`edge_fer.schema.command`); :meth:`ConvertOptions.validate`
checks it once (ranges and choices from the schema; what needs the source is checked where the source
is read, :mod:`edge_fer.convert.source`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_fer.schema import check, opt

IO_TYPES = ("int8", "uint8")
EVAL_SPLITS = ("test", "val")  # the held-out split convert verifies on; val: the selection split


@dataclass
class ConvertOptions:
    source: Path  # the positional argument: a run directory, a .keras file, or a .tflite bundle to recalibrate
    out: Path = opt(
        required=True, flag="--output", short="-o", aliases=("--out",), help="The int8 .tflite bundle to write."
    )
    report: Path | None = opt(
        None,
        flag="--json",
        deprecated=("--report",),
        help="The JSON report (default: <output>_report.json; '-': stdout, no table).",
    )
    io: str = opt("int8", choices=IO_TYPES, flag="--io", help="Input/output tensor type: int8 or uint8.")
    calib_samples: int = opt(300, lo=1, flag="--calib-samples", help="Calibration crops (class-stratified, seeded).")
    calib_data: Path | None = opt(
        None,
        flag="--calib-data",
        help="Calibration dataset (its train split; or a .npz with x, y). (default: the run's dataset)",
    )
    eval_data: Path | None = opt(
        None,
        flag="--eval-data",
        help="Held-out dataset (its test split, else val; or a .npz). (default: the run's dataset)",
    )
    eval_split: str = opt(
        "test",
        choices=EVAL_SPLITS,
        flag="--eval-split",
        help="Split of the held-out dataset to verify on: test (FER2013 PrivateTest; val when there is no test "
        "split) or val (the selection split, FER2013 PublicTest: compare candidates without seeing the test "
        "split). A .npz is used whole either way.",
    )
    max_drop: float = opt(
        1.0, flag="--max-drop", help="Fail (exit 1) when int8 accuracy drops more than this, in points."
    )
    write_float: bool = opt(False, flag="--float", help="Also write a float32 <output>_float.tflite.")
    decoder: bool = opt(False, flag="--decoder", help="Also write the autoencoder decoder as <output>_decoder.tflite.")
    # also the stage-1 autoencoder as <out>_ae.tflite, the crop-quality gate ('run --quality' uses it)
    quality: bool = opt(
        False,
        flag="--write-quality-gate",
        deprecated=("--quality",),
        help="Also write the stage-1 autoencoder as <output>_ae.tflite: the crop-quality gate of "
        "'edge-fer run' (threshold calibrated on the validation faces, stored in its metadata).",
    )
    quality_percentile: float = opt(
        99.0,
        lo=50.0,
        hi=100.0,
        flag="--quality-percentile",
        help="With --write-quality-gate: the threshold is this percentile of the validation faces' reconstruction error.",
    )
    seed: int | None = opt(None, lo=0, flag="--seed", help="Calibration sampling seed (default: the run's seed).")
    latency_runs: int = opt(200, lo=0, flag="--latency-runs", help="Invocations timed for the median latency.")
    compile_edgetpu: bool = opt(
        True, flag="--edgetpu-compile/--no-edgetpu-compile", help="Run edgetpu_compiler when it is installed."
    )
    # the runtime averages each crop with its mirror image (stored in the bundle)
    flip_average: bool = opt(
        False,
        flag="--flip-average",
        help="Runtime test-time augmentation: average each face with its mirror image "
        "(2 inferences per face; verified and timed as deployed).",
    )
    # the crop margin stored in the bundle (edge_fer.preprocess.square_box); it changes no weight
    margin: float | None = opt(
        None,
        lo=0.0,
        hi=2.0,
        open_hi=True,
        flag="--margin",
        help="Crop margin the runtime adds around each detector box, stored in the bundle (choose it on the "
        "selection split: benchmarks/crop_margin.py). (default: the run's --margin)",
    )

    # temperature scaling on the selection split, folded into the output softmax (convert/calibrate.py)
    calibrate: bool = opt(
        True,
        flag="--calibrate/--no-calibrate",
        help="Fit a calibration on the selection split (FER2013 PublicTest) so that the scores are calibrated "
        "probabilities, and fold it into the bundle (--calibration-method); reports ECE, NLL and a reliability diagram "
        "(<out>_reliability.png) before and after. A .tflite bundle as the source is recalibrated "
        "(with --eval-data).",
    )

    calibration_method: str = opt(
        "auto",
        choices=("auto", "temperature", "vector"),
        flag="--calibration-method",
        help="temperature: one number divides every logit (no prediction changes); vector: one scale per "
        "class, folded into the last layer's weight scales (fits a model that is over-confident on some "
        "classes and under-confident on others; top labels can change); auto: vector when its held-out NLL "
        "on halves of the selection split is lower, else temperature.",
    )

    def validate(self) -> ConvertOptions:
        check(self, as_flags=True)
        return self
