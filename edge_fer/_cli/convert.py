"""`edge-fer convert`: a training run -> a verified full-int8 TFLite bundle (needs the 'train' extra).

    edge-fer convert runs/res16 -o fer.tflite                  # + fer_report.json, a table on stdout
    edge-fer convert runs/res16 -o fer.tflite --json - -q      # the report on stdout instead

Exit codes: 0 done; 1 the int8 accuracy drop exceeds --max-drop (the model and the report are still
written; the report's ``gate.passed`` is false); 2 bad input (one line on stderr); 74 an output that
cannot be written. The flags, their defaults and help come from the one schema,
``edge_fer.convert.options.ConvertOptions`` (old spellings: ``--out``, ``--report``, ``--quality``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edge_fer import jsondoc, schema
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
            "Exit 1 when the accuracy drop exceeds --max-drop, 2 on bad input, 74 when an output cannot be written."
        ),
    )
    def _cmd(
        flags: dict[str, Any],
        source: Path = typer.Argument(
            ...,
            help="Run directory (model.keras, metadata.json, config.json), a .keras file, or a .tflite bundle "
            "to recalibrate.",
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No table on stdout."),
    ) -> None:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported (in convert_run)
        # No TensorFlow here: convert_run checks paths first (fast one-line errors), then imports it
        # and raises MissingExtraError when the 'train' extra is absent.
        from edge_fer.convert.converter import AccuracyDropError, convert_run
        from edge_fer.convert.report import calibration_lines, format_table
        from edge_fer.convert.source import is_tflite
        from edge_fer.fsutil import refuse_output_over_inputs

        opts = ConvertOptions(source=source, **flags)
        ins = [source, opts.calib_data, opts.eval_data, _run_dataset(source)]
        for out_path, flag in ((opts.out, "--output"), (opts.report, "--json")):
            refuse_output_over_inputs(out_path, ins, flag)
        show = not (quiet or jsondoc.to_stdout(flags.get("report")))
        if is_tflite(source):  # an existing bundle: recalibrate it
            from edge_fer.convert.calibrate import calibrate_bundle

            doc = calibrate_bundle(opts)
            if show:
                typer.echo("\n".join(calibration_lines(doc["probability_calibration"])))
                typer.echo("wrote " + ", ".join(str(v) for v in doc["outputs"].values() if str(v) != "-"))
            return
        try:
            rep = convert_run(opts)
        except AccuracyDropError as e:
            if e.report is not None and show:
                typer.echo(format_table(e.report))
            raise
        if show:
            typer.echo(format_table(rep))
            typer.echo("wrote " + ", ".join(str(v) for v in rep.outputs.values() if str(v) != "-"))


def _run_dataset(source: str | Path) -> Any:
    """The dataset a run folder was trained on (convert's default calibration and evaluation data):
    an input too, so that ``-o`` or ``--json`` never lands on it."""
    from edge_fer.train.rundir import RunDir

    return RunDir(Path(source)).default_data() if Path(source).is_dir() else None
