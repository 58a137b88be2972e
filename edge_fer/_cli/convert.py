"""`edge-fer convert`: a training run -> a verified full-int8 TFLite bundle (needs the 'train' extra).

Exit codes: 0 done; 2 bad input (one line on stderr); 3 the int8 accuracy drop exceeds --max-drop
(the model and the report are still written; the report's ``gate.passed`` is false).
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command(
        "convert",
        help=(
            "Convert a training run (directory or .keras) to a full-int8 TFLite bundle with embedded metadata, "
            "verify it against the float model on held-out faces, audit it for the Edge TPU. "
            "Exit 2 on bad input, 3 when the accuracy drop exceeds --max-drop."
        ),
    )
    def _cmd(
        source: Path = typer.Argument(..., help="Run directory (model.keras, metadata.json, config.json) or a .keras file."),
        out: Path = typer.Option(..., "--out", "-o", help="The int8 .tflite bundle to write."),
        report: Path = typer.Option(None, "--report", help="Report JSON (default: <out>_report.json)."),
        io: str = typer.Option("int8", "--io", help="Input/output tensor type: int8 or uint8."),
        calib_samples: int = typer.Option(300, "--calib-samples", help="Calibration crops (class-stratified, seeded)."),
        calib_data: Path = typer.Option(
            None, "--calib-data", help="Calibration dataset (its train split; or a .npz with x, y). Default: the run's dataset."
        ),
        eval_data: Path = typer.Option(
            None, "--eval-data", help="Held-out dataset (its test split, else val; or a .npz). Default: the run's dataset."
        ),
        max_drop: float = typer.Option(1.0, "--max-drop", help="Fail (exit 3) when int8 accuracy drops more than this, in points."),
        write_float: bool = typer.Option(False, "--float", help="Also write a float32 <out>_float.tflite."),
        decoder: bool = typer.Option(False, "--decoder", help="Also write the autoencoder decoder as <out>_decoder.tflite."),
        quality: bool = typer.Option(
            False, "--quality",
            help="Also write the stage-1 autoencoder as <out>_ae.tflite: the crop-quality gate of 'edge-fer run' "
            "(threshold calibrated on the validation faces, stored in its metadata).",
        ),
        quality_percentile: float = typer.Option(
            99.0, "--quality-percentile", help="With --quality: the threshold is this percentile of the validation faces' reconstruction error."
        ),
        seed: int = typer.Option(None, "--seed", help="Calibration sampling seed (default: the run's seed)."),
        latency_runs: int = typer.Option(200, "--latency-runs", help="Invocations timed for the median latency."),
        no_compile: bool = typer.Option(False, "--no-edgetpu-compile", help="Do not run edgetpu_compiler even if installed."),
        flip_average: bool = typer.Option(False, "--flip-average", help="Runtime test-time augmentation: average each face with its mirror image (2 inferences per face; verified and timed as deployed)."),
    ) -> None:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported (in convert_run)
        # No TensorFlow here: convert_run checks paths first (fast one-line errors), then imports it
        # and raises MissingExtraError when the 'train' extra is absent.
        from edge_fer.convert.pipeline import AccuracyDropError, ConvertOptions, convert_run, format_table

        opts = ConvertOptions(
            source=source,
            out=out,
            report=report,
            io=io,
            calib_samples=calib_samples,
            calib_data=calib_data,
            eval_data=eval_data,
            max_drop=max_drop,
            write_float=write_float,
            decoder=decoder,
            quality=quality,
            quality_percentile=quality_percentile,
            seed=seed,
            latency_runs=latency_runs,
            compile_edgetpu=not no_compile,
            flip_average=flip_average,
        )
        try:
            rep = convert_run(opts)
        except AccuracyDropError as e:
            rep = getattr(e, "report", None)
            if rep is not None:
                typer.echo(format_table(rep))
            raise
        typer.echo(format_table(rep))
        typer.echo("wrote " + ", ".join(str(v) for v in rep["outputs"].values()))
