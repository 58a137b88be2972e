"""What a finished training leaves in its run directory: the models, the bundle metadata
(``metadata.json``: labels, preprocessing, provenance, metrics), metrics and history files."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_fer.train.model import NetConfig
from edge_fer.train.options import TrainConfig
from edge_fer.train.results import TrainMetrics
from edge_fer.train.rundir import RunDir
from edge_fer.train.space import bytes_needed, export_dir, save_model_file
from edge_fer.train.stages import Models, StageHistory

from edge_fer import __version__
from edge_fer.bundle import ModelMeta, Preprocessing
from edge_fer.fsutil import atomic_write_json

log = logging.getLogger("edge_fer.train")


def write_metrics(run: RunDir, metrics: TrainMetrics, rows: list[dict]) -> None:
    atomic_write_json(run.metrics, metrics.to_dict())
    atomic_write_json(run.history, rows)
    StageHistory.write_csv(rows, run.history_csv)


def export_autoencoder(run: RunDir, net: NetConfig) -> Any:
    """Save the stage-1 autoencoder (and its encoder and decoder) from its own checkpoint.

    Fine-tuning changes the encoder it shares with the classifier, so the pair that reconstructs
    faces — the reconstruction-error quality signal — is rebuilt from ``checkpoints/ae.weights.h5``."""
    from edge_fer.train.model import build_autoencoder, build_decoder, build_encoder

    encoder, decoder = build_encoder(net), build_decoder(net)
    autoencoder = build_autoencoder(encoder, decoder)
    autoencoder.load_weights(run.ae_weights)
    for model, path in ((encoder, run.encoder), (decoder, run.decoder), (autoencoder, run.autoencoder)):
        save_model_file(model, path)
    return autoencoder


def save_models(run: RunDir, cfg: TrainConfig, net: NetConfig, models: Models, export: bool = True) -> Any:
    """model.keras (+ a SavedModel when ``export``: TensorFlow only), and the stage-1 autoencoder when
    there was one (returned)."""
    save_model_file(models.classifier, run.model)
    stage1 = (
        export_autoencoder(run, net)
        if (cfg.pretrain and (cfg.ae_epochs > 0 or cfg.init_ae or cfg.init_model))
        else None
    )
    if export:
        try:
            need = bytes_needed(models.classifier) + (16 << 20)  # the weights and the traced graph
            export_dir(lambda p: models.classifier.export(str(p), verbose=False), run.saved_model, need)
        except Exception as e:  # the .keras file is the primary artefact; export is a convenience
            log.warning("SavedModel export failed (%s); convert will read model.keras", e)
    return stage1


def bundle_meta(
    run: RunDir,
    cfg: TrainConfig,
    net: NetConfig,
    prep: Preprocessing,
    dataset: Any,
    params: int,
    metrics: TrainMetrics,
    device: dict,
) -> ModelMeta:
    """The bundle's metadata as training knows it; ``convert`` adds the quantization. ``device``:
    :func:`edge_fer.train.backend.describe_device` (backend, versions, devices trained on)."""
    return ModelMeta(
        labels=tuple(dataset.labels),
        input_height=net.input_size,
        input_width=net.input_size,
        input_channels=1,
        preprocessing=prep,
        provenance={
            "run_dir": str(run.root.resolve()),
            "dataset": str(Path(cfg.data).resolve()),
            "dataset_kind": dataset.report.kind,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "edge_fer": __version__,
            **framework_versions(device),
            "seed": cfg.seed,
            "pretrain": cfg.pretrain,
            "params": params,
            "model_config": net.to_dict(),
        },
        metrics=metrics.summary(),
    )


def framework_versions(device: dict) -> dict[str, Any]:
    """The versions a run's provenance records: Keras and its backend, and the devices trained on;
    ``tensorflow`` too on TensorFlow runs, as before the other backends."""
    out: dict[str, Any] = {}
    if device["backend"] == "tensorflow":
        out["tensorflow"] = device["backend_version"]
    return {
        **out,
        "keras": device["keras"],
        "backend": device["backend"],
        "backend_version": device["backend_version"],
        "devices": list(device["devices"]),
    }
