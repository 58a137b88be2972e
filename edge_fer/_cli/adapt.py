"""`edge-fer adapt`: adapt a trained run to a new camera from its unlabeled face crops (needs the
'train' extra). Writes a new run directory for `edge-fer convert`; the original run is untouched.

    edge-fer run --source /dev/video0 --save-crops crops/ --max-frames 3000
    edge-fer adapt runs/res16 --unlabeled crops/ --out runs/res16-cam1
    edge-fer convert runs/res16-cam1 --out cam1.tflite --quality
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command(
        "adapt",
        help=(
            "Adapt a training run to a new camera from unlabeled face crops (what 'edge-fer run --save-crops' collects): "
            "the classifier's batch-norm statistics re-estimated on the new crops mixed with the original faces; "
            "'edge-fer convert --quality' of the result calibrates the quality gate on the new crops. Exit 2 on bad input."
        ),
    )
    def adapt_cmd(
        run_dir: Path = typer.Argument(..., help="The trained run directory (model.keras, autoencoder.keras, config.json)."),
        unlabeled: Path = typer.Option(..., "--unlabeled", help="Folder of face crops from the new camera (at least 100)."),
        out: Path = typer.Option(..., "--out", "-o", help="The adapted run directory to write."),
        mix: float = typer.Option(2.0, "--mix", help="Original training faces per new crop, mixed in for the batch-norm statistics (0: the new crops alone)."),
        bn: bool = typer.Option(True, "--bn/--no-bn", help="Re-estimate the classifier's batch-norm statistics."),
        ae_epochs: int = typer.Option(0, "--ae-epochs", help="Epochs of autoencoder reconstruction training on the mix (default 0: measured to make the quality gate worse)."),
        ae_lr: float = typer.Option(1e-4, "--ae-lr", help="Adam learning rate of that training."),
        data: Optional[Path] = typer.Option(None, "--data", help="The original faces (default: the run's dataset, config.json)."),
        seed: int = typer.Option(0, "--seed", help="Sampling and training seed."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out folder."),
    ) -> None:
        import json

        from edge_fer.train.adapt import AdaptOptions, adapt

        rep = adapt(AdaptOptions(run_dir=run_dir, unlabeled=unlabeled, out=out, mix=mix, bn=bn, ae_epochs=ae_epochs,
                                 ae_lr=ae_lr, batch_size=128, seed=seed, data=data, overwrite=overwrite))
        ae = rep["autoencoder"]
        typer.echo(
            f"adapted {rep['source_run']} -> {out}: {rep['crops']} new crops + {rep['original_faces']} original faces; "
            f"{rep['bn_layers_reestimated']} batch-norm layers re-estimated; "
            f"predictions changed on {100 * rep['predicted_on_new_crops']['changed']:.1f}% of the new crops; "
            f"autoencoder MSE on the new crops {ae['mse_new_before']:.5f} -> {ae['mse_new_after']:.5f}"
        )
        typer.echo(json.dumps({"report": str(out / "adapt.json")}))
