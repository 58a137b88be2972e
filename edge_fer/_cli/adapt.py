"""`edge-fer adapt`: adapt a trained run to a new camera from its unlabeled face crops (needs the
'train' extra). Writes a new run directory for `edge-fer convert`; the original run is untouched.

    edge-fer run --source /dev/video0 --save-crops crops/ --max-frames 3000
    edge-fer adapt runs/res16 --unlabeled crops/ -o runs/res16-cam1
    edge-fer convert runs/res16-cam1 -o cam1.tflite --write-quality-gate

The flags, their defaults and help come from the one schema, ``edge_fer.train.adapt_options.AdaptOptions``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edge_fer import schema
from edge_fer.train.adapt_options import AdaptOptions


def register(app: typer.Typer) -> None:
    @schema.command(
        app,
        "adapt",
        [("", AdaptOptions)],
        help=(
            "Adapt a training run to a new camera from unlabeled face crops (what 'edge-fer run --save-crops' collects): "
            "the classifier's batch-norm statistics re-estimated on the new crops mixed with the original faces; "
            "'edge-fer convert --write-quality-gate' of the result calibrates the quality gate on the new crops. Exit 2 on bad input."
        ),
    )
    def adapt_cmd(
        flags: dict[str, Any],
        run_dir: Path = typer.Argument(
            ..., help="The trained run directory (model.keras, autoencoder.keras, config.json)."
        ),
    ) -> None:
        import json

        from edge_fer.train.adapt import adapt

        opts = AdaptOptions(run_dir=run_dir, **flags)
        from edge_fer.fsutil import refuse_output_over_inputs
        from edge_fer.train.rundir import RunDir

        run_data = RunDir(Path(run_dir)).default_data() if Path(run_dir).is_dir() else None
        refuse_output_over_inputs(opts.out, [run_dir, opts.unlabeled, opts.data, run_data], "--output")
        rep = adapt(opts)
        ae = rep["autoencoder"]
        typer.echo(
            f"adapted {rep['source_run']} -> {opts.out}: {rep['crops']} new crops + "
            f"{rep['original_faces']} original faces; "
            f"{rep['bn_layers_reestimated']} batch-norm layers re-estimated; "
            f"predictions changed on {100 * rep['predicted_on_new_crops']['changed']:.1f}% of the new crops; "
            f"autoencoder MSE on the new crops {ae['mse_new_before']:.5f} -> {ae['mse_new_after']:.5f}"
        )
        typer.echo(json.dumps({"report": str(opts.out / "adapt.json")}))
