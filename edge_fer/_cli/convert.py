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
            "verify it against the float model on held-out faces, audit it for the Edge TPU. "
            "Exit 2 on bad input, 3 when the accuracy drop exceeds --max-drop."
        ),
    )
    def _cmd(
        flags: dict[str, Any],
        source: Path = typer.Argument(
            ..., help="Run directory (model.keras, metadata.json, config.json) or a .keras file."
        ),
    ) -> None:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported (in convert_run)
        # No TensorFlow here: convert_run checks paths first (fast one-line errors), then imports it
        # and raises MissingExtraError when the 'train' extra is absent.
        from edge_fer.convert.converter import AccuracyDropError, convert_run
        from edge_fer.convert.report import format_table
        from edge_fer.fsutil import refuse_output_over_inputs

        opts = ConvertOptions(source=source, **flags)
        ins = [source, opts.calib_data, opts.eval_data]
        for out_path, flag in ((opts.out, "--out"), (opts.report, "--report")):
            refuse_output_over_inputs(out_path, ins, flag)
        try:
            rep = convert_run(opts)
        except AccuracyDropError as e:
            if e.report is not None:
                typer.echo(format_table(e.report))
            raise
        typer.echo(format_table(rep))
        typer.echo("wrote " + ", ".join(str(v) for v in rep.outputs.values()))
