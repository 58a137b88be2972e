"""`edge-fer convert`: a training run -> a verified full-int8 TFLite bundle (needs the 'train' extra).

Exit codes: 0 done; 2 bad input (one line on stderr); 3 the int8 accuracy drop exceeds --max-drop
(the model and the report are still written; the report's ``gate.passed`` is false). The flags, their
defaults and help come from the one schema, ``edge_fer.convert.options.ConvertOptions``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edge_fer import schema
from edge_fer.convert.options import ConvertOptions


def register(app: typer.Typer) -> None:
    @schema.command(
        app,
        "convert",
        [("", ConvertOptions)],
        help=(
            "Convert a training run (directory or .keras) to a full-int8 TFLite bundle with embedded metadata, "
            "calibrate its probabilities (temperature scaling on the selection split), verify it against the float "
            "model on held-out faces, audit it for the Edge TPU; or recalibrate an existing .tflite bundle "
            "(--eval-data DATASET). "
            "Exit 2 on bad input, 3 when the accuracy drop exceeds --max-drop."
        ),
    )
    def _cmd(
        flags: dict[str, Any],
        source: Path = typer.Argument(
            ...,
            help="Run directory (model.keras, metadata.json, config.json), a .keras file, or a .tflite bundle "
            "to recalibrate.",
        ),
    ) -> None:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported (in convert_run)
        # No TensorFlow here: convert_run checks paths first (fast one-line errors), then imports it
        # and raises MissingExtraError when the 'train' extra is absent.
        from edge_fer.convert.converter import AccuracyDropError, convert_run
        from edge_fer.convert.report import calibration_lines, format_table
        from edge_fer.convert.source import is_tflite

        opts = ConvertOptions(source=source, **flags)
        if is_tflite(source):  # an existing bundle: recalibrate it
            from edge_fer.convert.calibrate import calibrate_bundle

            doc = calibrate_bundle(opts)
            typer.echo("\n".join(calibration_lines(doc["probability_calibration"])))
            typer.echo("wrote " + ", ".join(str(v) for v in doc["outputs"].values()))
            return
        try:
            rep = convert_run(opts)
        except AccuracyDropError as e:
            if e.report is not None:
                typer.echo(format_table(e.report))
            raise
        typer.echo(format_table(rep))
        typer.echo("wrote " + ", ".join(str(v) for v in rep.outputs.values()))
