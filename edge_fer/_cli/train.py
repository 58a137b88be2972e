"""`edge-fer train`: dataset -> autoencoder pretraining -> classifier fine-tuning -> run directory."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        data: Path = typer.Option(..., "--data", help="FER2013 .csv, a .zip, or a folder of <class>/ images."),
        out: Path = typer.Option(..., "--out", help="Run directory to write (model, metrics.json, plots)."),
        ae_epochs: int = typer.Option(20, "--ae-epochs", help="Autoencoder pretraining epochs (stage 1)."),
        epochs: int = typer.Option(40, "--epochs", help="End-to-end fine-tuning epochs (stage 3), early-stopped."),
        head_epochs: int = typer.Option(3, "--head-epochs", help="Epochs with the encoder frozen (stage 2)."),
        batch_size: int = typer.Option(128, "--batch-size"),
        lr: float = typer.Option(1e-3, "--lr", help="Learning rate of the head stage (and of --no-pretrain with --optimizer adam)."),
        finetune_lr: float = typer.Option(3e-4, "--finetune-lr", help="Learning rate of end-to-end fine-tuning (with --optimizer sgd: the peak rate, also for --no-pretrain)."),
        ae_lr: float = typer.Option(1e-3, "--ae-lr"),
        patience: int = typer.Option(8, "--patience", help="Early-stopping patience on validation accuracy."),
        width: int = typer.Option(16, "--width", help="Channel width multiplier of the network."),
        latent_channels: int = typer.Option(32, "--latent-channels", help="Bottleneck channels (6x6xL code)."),
        arch: str = typer.Option("v1", "--arch", help="Encoder: v1 (plain conv stack) or res (residual blocks at 12x12 and 6x6)."),
        optimizer: str = typer.Option("adam", "--optimizer", help="Fine-tuning optimizer: adam (+ reduce on plateau) or sgd (Nesterov, warm-up + cosine)."),
        label_smoothing: float = typer.Option(0.0, "--label-smoothing", help="Label smoothing of the classification loss."),
        warmup_epochs: int = typer.Option(3, "--warmup-epochs", help="Linear warm-up epochs of --optimizer sgd."),
        erase: float = typer.Option(0.0, "--erase", help="Random-erasing probability per training face (occlusion augmentation)."),
        weight_decay: float = typer.Option(1e-4, "--weight-decay", help="L2 penalty on convolution kernels."),
        class_weight_power: float = typer.Option(0.5, "--class-weight-power", help="Class weights (1/frequency)^p; 0 disables."),
        dropout: float = typer.Option(0.4, "--dropout"),
        seed: int = typer.Option(0, "--seed"),
        val_fraction: float = typer.Option(0.1, "--val-fraction", help="Held-out share when the data has no validation split."),
        class_map: list[str] = typer.Option([], "--class-map", help="FOLDER=LABEL mapping of your class folders (repeatable)."),
        unlabeled: Path | None = typer.Option(None, "--unlabeled", help="Folder of extra unlabeled face crops for stage 1."),
        init_ae: Path | None = typer.Option(None, "--init-ae", help="Take stage 1 (the autoencoder) from another run dir instead of training it (same --arch/--width/--latent-channels)."),
        no_pretrain: bool = typer.Option(False, "--no-pretrain", help="Ablation: same classifier trained from scratch."),
        limit: int = typer.Option(0, "--limit", help="Use at most N training faces (stratified), for smoke runs."),
        margin: float = typer.Option(0.1, "--margin", help="Crop margin the runtime adds around detected faces."),
        blur_sigma: str = typer.Option("auto", "--blur-sigma", help="Blur applied to non-training inputs: 'auto' (match the training faces' sharpness) or a sigma; 0 disables."),
        resume: bool = typer.Option(False, "--resume", help="Continue a stopped run in --out."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run in --out."),
    ) -> None:
        """Train the autoencoder-pretrained expression classifier (needs the 'train' extra)."""
        from edge_fer.train._tf import require_tensorflow

        require_tensorflow("edge-fer train")
        from edge_fer.errors import EdgeFerError
        from edge_fer.train.trainer import TrainConfig, train

        try:
            sigma = None if blur_sigma == "auto" else float(blur_sigma)
        except ValueError:
            raise EdgeFerError(f"--blur-sigma must be 'auto' or a number, not {blur_sigma!r}") from None

        cfg = TrainConfig(
            data=str(data), out=str(out), ae_epochs=ae_epochs, epochs=epochs, head_epochs=head_epochs,
            batch_size=batch_size, ae_lr=ae_lr, lr=lr, finetune_lr=finetune_lr, patience=patience, seed=seed,
            width=width, latent_channels=latent_channels, arch=arch, optimizer=optimizer,
            label_smoothing=label_smoothing, warmup_epochs=warmup_epochs, erase=erase, weight_decay=weight_decay,
            class_weight_power=class_weight_power, dropout=dropout, val_fraction=val_fraction,
            class_map=list(class_map), unlabeled=str(unlabeled) if unlabeled else None,
            init_ae=str(init_ae) if init_ae else None, pretrain=not no_pretrain,
            limit=limit, margin=margin, blur_sigma=sigma,
        )
        metrics = train(cfg, resume=resume, overwrite=overwrite)
        for name, m in metrics.items():
            if isinstance(m, dict) and "accuracy" in m:
                typer.echo(f"{name}: accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  (n={m['n']})")
        typer.echo(f"run directory: {out}")
