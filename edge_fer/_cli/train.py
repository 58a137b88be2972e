"""`edge-fer train`: dataset -> autoencoder pretraining -> classifier fine-tuning -> run directory.

The flags, their defaults and help come from the one schema, ``edge_fer.train.options.TrainConfig``.
"""

from __future__ import annotations

from typing import Any

import typer

from edge_fer import schema
from edge_fer.train.options import TrainConfig


def register(app: typer.Typer) -> None:
    @schema.command(app, "train", [("", TrainConfig)])
    def train_cmd(
        flags: dict[str, Any],
        resume: bool = typer.Option(False, "--resume", help="Continue a stopped run in --output."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run in --output."),
        quiet: bool = typer.Option(
            False, "--quiet", "-q", help="No accuracy table on stdout (the figures are in <output>/metrics.json)."
        ),
    ) -> None:
        """Train the autoencoder-pretrained expression classifier (needs the 'train', 'jax' or 'torch' extra)."""
        from edge_fer.train.backend import resolve_backend
        from edge_fer.train.trainer import train

        cfg = TrainConfig.from_flags(flags)
        resolve_backend(cfg.backend)  # a missing backend: one line naming its extra, before reading any data
        from edge_fer.fsutil import refuse_output_over_inputs

        refuse_output_over_inputs(cfg.out, [cfg.data, *(cfg.teacher or [])], "--output")
        metrics = train(cfg, resume=resume, overwrite=overwrite)
        if quiet:
            return
        for name, m in metrics.splits.items():
            typer.echo(f"{name}: accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  (n={m['n']})")
        typer.echo(f"run directory: {cfg.out}")
