"""`edge-fer eval`: accuracy, macro-F1, per-class precision/recall, the confusion matrix and how far the
scores can be trusted as probabilities (ECE over 15 bins, NLL, mean top probability: edge_fer.calibration)
of a bundle on labeled faces, through the runtime's own classifier (never TensorFlow).

    edge-fer eval --data fer2013.zip                       # the shipped model, FER2013 PrivateTest
    edge-fer eval --model m.tflite --data faces/ --detect  # DIR/<class>/*, crops from the detector
    edge-fer eval --data fer2013.zip --json - -q           # the JSON report on stdout

The detector flags (``--detector``, ``--detector-model``, ``--detect-scale``, ``--min-face``) are the
ones of ``edge-fer run``, generated from its schema (:mod:`edge_fer.config`) with its defaults, so
``eval --detect`` measures the crops ``run`` makes. Exit 2 on bad input, 74 when the report cannot
be written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edge_fer import jsondoc, schema

# the detector flags eval shares with `edge-fer run` (their spelling, help and defaults)
DETECTOR_KEYS = ("detector.name", "detector.model", "detector.scale", "detector.min_size")


def register(app: typer.Typer) -> None:
    from edge_fer.config import SCHEMAS

    @schema.command(
        app,
        "eval",
        SCHEMAS,
        keys=DETECTOR_KEYS,
        help="Evaluate a model bundle on labeled faces through the runtime's own preprocessing: accuracy, macro-F1, "
        "per-class figures, and how far its scores are calibrated (ECE, NLL, mean top probability). "
        "Exit 2 on bad input, 74 when the report cannot be written.",
    )
    def eval_cmd(
        data: Path = typer.Option(
            ..., "--data", help="FER2013 .csv/.zip/folder, or a labeled image folder DIR/<class>/*."
        ),
        model: Path | None = typer.Option(
            None, "--model", "-m", help="Model bundle (.tflite); default: the shipped one."
        ),
        split: str | None = typer.Option(
            None, "--split", help="PrivateTest (default for FER2013), PublicTest, Training, test, val, train or all."
        ),
        detect: bool = typer.Option(
            False,
            "--detect",
            help="Classify the crop the runtime's face detector makes (images without a face are counted); "
            "the detector flags below apply.",
        ),
        json_path: str | None = typer.Option(
            None, "--json", help="Write the figures to this JSON report ('-': stdout, no table)."
        ),
        class_map: list[str] = typer.Option(
            [], "--class-map", help="FOLDER=LABEL mapping of your class folders (repeatable)."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No table on stdout (use with --json PATH)."),
        flags: dict[str, Any] | None = None,
    ) -> None:
        from edge_fer import config as cfgmod
        from edge_fer.evaluate import DetectOptions, evaluate
        from edge_fer.fsutil import refuse_output_over_inputs

        det = cfgmod.build(None, flags or {}, as_flags=True).detector
        opts = DetectOptions(detector=det.name, model=det.model, scale=det.scale, min_size=det.min_size)
        refuse_output_over_inputs(json_path, [data, model, det.model or None], "--json")
        rep = evaluate(model, data, split=split, detect=detect, class_map=list(class_map), detect_options=opts)
        jsondoc.write(json_path, jsondoc.document("eval", rep.to_dict()), mkdir=True)
        if not (quiet or jsondoc.to_stdout(json_path)):
            typer.echo(rep.render())
