"""The three stages of a training, each resumable (a stage is recorded in ``state.json`` when done):

1. ``ae``        the convolutional autoencoder on the training faces (+ optional unlabeled crops), MSE.
2. ``head``      encoder frozen, classifier head trained.
3. ``finetune``  everything trained at a lower rate; early stopping and checkpoint selection on the
                 validation split.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edge_fer.train.interrupts import InterruptWatch, keras_callbacks
from edge_fer.train.model import NetConfig
from edge_fer.train.options import TrainConfig
from edge_fer.train.rundir import RunDir
from edge_fer.train.space import guard_callback, save_model_file

from edge_fer.errors import DataError, ModelError
from edge_fer.fsutil import atomic_write_json, atomic_write_text

log = logging.getLogger("edge_fer.train")

TRAIN_STAGES = ("ae", "head", "finetune")


class StageHistory:
    """Appends every epoch's logs (with its stage) to history.jsonl, so a resumed run keeps one history."""

    def __init__(self, path: Path):
        self.path = path

    def callback(self, stage: str):
        import keras

        path = self.path

        class _CB(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = {k: round(float(v), 6) for k, v in (logs or {}).items()}
                try:
                    logs["lr"] = float(np.asarray(self.model.optimizer.learning_rate))
                except (AttributeError, TypeError, ValueError):
                    pass
                row = {"stage": stage, "epoch": epoch + 1, **logs}
                with open(path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                log.info(
                    "%s epoch %d: %s", stage, epoch + 1, " ".join(f"{k}={v:.4f}" for k, v in logs.items() if k != "lr")
                )

        return _CB()

    def rows(self) -> list[dict]:
        """One row per epoch; an epoch redone after a resume replaces the earlier row."""
        if not self.path.exists():
            return []
        latest: dict[tuple, dict] = {}
        for line in self.path.read_text().splitlines():
            try:
                r = json.loads(line)
                key = (TRAIN_STAGES.index(r["stage"]), int(r["epoch"]))
            except (ValueError, TypeError, KeyError):  # a blank line, or one cut short by a full disk or a kill
                continue
            latest[key] = r
        return [latest[k] for k in sorted(latest)]

    @staticmethod
    def write_csv(rows: list[dict], path: Path) -> None:
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(path, buf.getvalue())


@dataclass
class Models:
    """The autoencoder and the classifier, sharing one encoder."""

    encoder: Any
    decoder: Any
    autoencoder: Any
    classifier: Any

    @classmethod
    def build(cls, net: NetConfig, strategy: Any) -> Models:
        from edge_fer.train.model import build_autoencoder, build_classifier, build_decoder, build_encoder

        with strategy.scope():
            encoder, decoder = build_encoder(net), build_decoder(net)
            return cls(encoder, decoder, build_autoencoder(encoder, decoder), build_classifier(encoder, net))


@dataclass
class StageRunner:
    """Fits one stage at a time, recording its timing and completion in ``state.json``."""

    run: RunDir
    state: dict
    strategy: Any
    verbose: int = 0
    # Ctrl-C noted while training: raised again at the next batch if its first raise was lost
    interrupts: InterruptWatch = field(default_factory=InterruptWatch)
    history: StageHistory = field(init=False)

    def __post_init__(self) -> None:
        self.history = StageHistory(self.run.history_jsonl)
        self.state.setdefault("timing", {})
        self.state.setdefault("done", [])

    @property
    def done(self) -> list[str]:
        return self.state["done"]

    @property
    def timing(self) -> dict:
        return self.state["timing"]

    def save_state(self) -> None:
        atomic_write_json(self.run.state, self.state)

    def finish(self, stage: str) -> None:
        self.done.append(stage)
        self.save_state()
        self.interrupts.check()

    def fit(
        self, stage: str, model: Any, train_ds: Any, val_ds: Any, epochs: int, n_images: int, callbacks: tuple = ()
    ) -> None:
        import keras

        backup = self.run.ckpt / f"{stage}_backup"
        # the room check first: Keras calls the callbacks in order, and the backup writes at epoch end
        # Ctrl-C is held while an epoch's files are written (edge_fer.train.interrupts)
        hold, release = keras_callbacks(self.interrupts)
        cbs = [
            guard_callback(self.run.ckpt),
            hold,
            keras.callbacks.BackupAndRestore(str(backup)),
            self.history.callback(stage),
            *callbacks,
            release,
        ]
        t0 = time.perf_counter()
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=self.verbose, callbacks=cbs, shuffle=False)
        dt = time.perf_counter() - t0
        t = self.timing.setdefault(stage, {"seconds": 0.0, "epochs": 0})
        t["seconds"] = round(t["seconds"] + dt, 1)
        t["epochs"] = epochs
        t["images_per_s"] = round(n_images * epochs / max(t["seconds"], 1e-9), 1)
        save_model_file(model, self.run.ckpt / f"{stage}.weights.h5", weights_only=True)
        self.finish(stage)


def pretrain_autoencoder(
    runner: StageRunner, cfg: TrainConfig, net: NetConfig, models: Models, make_ae_data: Any
) -> None:
    """Stage 1: taken from ``--init-ae``, restored when done earlier, or trained.
    ``make_ae_data()`` -> (train dataset, val dataset, number of faces), built only when training."""
    if not cfg.pretrain:
        return
    init_ae = cfg.init_ae or cfg.init_model
    if init_ae and "ae" not in runner.done:
        _take_autoencoder(runner, cfg, models)
    elif cfg.ae_epochs > 0 or "ae" in runner.done:
        if "ae" in runner.done:
            models.autoencoder.load_weights(runner.run.ae_weights)
            log.info("stage ae: done earlier, weights restored")
            return
        import keras

        train_ds, val_ds, n = make_ae_data()
        log.info(
            "stage ae: autoencoder pretraining, %d epochs on %d faces (bottleneck %d values < %d pixels)",
            cfg.ae_epochs,
            n,
            net.bottleneck_size,
            net.input_size**2,
        )
        with runner.strategy.scope():
            models.autoencoder.compile(optimizer=keras.optimizers.Adam(cfg.ae_lr), loss="mse")
        runner.fit("ae", models.autoencoder, train_ds, val_ds, cfg.ae_epochs, n)


def _misfit(flag: str, given: str, src: Path, cfg: TrainConfig) -> DataError:
    """Weights from ``given`` (``flag``) that do not fit this model: one line naming the settings that
    differ when ``given`` is a run directory (its config.json says how it was built)."""
    shape_keys = ("arch", "width", "latent_channels")
    differ = []
    folder = Path(given)
    if folder.is_dir():
        try:
            saved = RunDir(folder).read_config()
        except ModelError:  # a damaged config.json: the general hint below
            saved = {}
        differ = [
            f"--{k.replace('_', '-')} {saved[k]} there, {getattr(cfg, k)} here"
            for k in shape_keys
            if k in saved and saved[k] != getattr(cfg, k)
        ]
    why = "; ".join(differ) if differ else "same --arch, --width and --latent-channels needed"
    return DataError(f"{flag} {given}: {src.name} does not fit this model ({why})")


@contextlib.contextmanager
def _quiet_keras_loading() -> Iterator[None]:
    """Keras warns once per layer it cannot match while loading weights (dozens of lines); the
    mismatch is reported as one error instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _take_autoencoder(runner: StageRunner, cfg: TrainConfig, models: Models) -> None:
    """Stage 1 from ``--init-ae`` (or from the ``--init-model`` run)."""
    flag, given = ("--init-model", cfg.init_model) if cfg.init_model else ("--init-ae", cfg.init_ae)
    assert given
    src = Path(given)
    src = RunDir(src).ae_weights if src.is_dir() else src
    if not src.is_file():
        raise DataError(f"{flag} {given}: no autoencoder weights there (want a run dir or ae.weights.h5)")
    try:
        with _quiet_keras_loading():
            models.autoencoder.load_weights(src)
    except (ValueError, OSError):
        raise _misfit(flag, given, src, cfg) from None
    shutil.copyfile(src, runner.run.ae_weights)
    log.info("stage ae: taken from %s (not retrained)", src)
    runner.timing["ae"] = {"seconds": 0.0, "epochs": 0, "from": str(src)}
    runner.finish("ae")


def _take_classifier(runner: StageRunner, cfg: TrainConfig, models: Models) -> None:
    """``--init-model``: the classifier's weights (encoder and head) from a finished run, in place of
    stage 2; kept as this run's head checkpoint, so a resumed run restores them."""
    import keras

    assert cfg.init_model
    src = RunDir(Path(cfg.init_model)).model
    try:
        with _quiet_keras_loading():
            trained = keras.models.load_model(src, compile=False)
            models.classifier.set_weights(trained.get_weights())
    except (ValueError, OSError):
        raise _misfit("--init-model", cfg.init_model, src, cfg) from None
    save_model_file(models.classifier, runner.run.ckpt / "head.weights.h5", weights_only=True)
    log.info("stage head: the classifier taken from %s (not retrained)", src)
    runner.timing["head"] = {"seconds": 0.0, "epochs": 0, "from": str(src)}
    runner.finish("head")


def _loss_and_metrics(cfg: TrainConfig) -> tuple[Any, list]:
    import keras

    if cfg.label_smoothing > 0 or cfg.teacher:  # one-hot or soft (distillation) targets
        return (
            keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            [keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
    return "sparse_categorical_crossentropy", [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def train_head(runner: StageRunner, cfg: TrainConfig, models: Models, train_ds: Any, val_ds: Any, n: int) -> None:
    """Stage 2: the head with the encoder frozen."""
    if not (cfg.pretrain and cfg.head_epochs > 0):
        return
    if "head" in runner.done:
        models.classifier.load_weights(runner.run.ckpt / "head.weights.h5")
        return
    if cfg.init_model:
        _take_classifier(runner, cfg, models)
        return
    import keras

    models.encoder.trainable = False
    with runner.strategy.scope():
        loss, mets = _loss_and_metrics(cfg)
        models.classifier.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=loss, metrics=mets)
    log.info("stage head: encoder frozen, %d epochs", cfg.head_epochs)
    runner.fit("head", models.classifier, train_ds, val_ds, cfg.head_epochs, n)
    models.encoder.trainable = True


def finetune(
    runner: StageRunner, cfg: TrainConfig, models: Models, train_ds: Any, val_ds: Any, n: int, val_name: str
) -> None:
    """Stage 3: end to end (or from scratch with ``--no-pretrain``); the best epoch on the validation
    split is kept (``checkpoints/best.weights.h5``) and loaded into the classifier."""
    import keras

    best_path = runner.run.ckpt / "best.weights.h5"
    epochs = cfg.finetune_epochs
    if "finetune" in runner.done:
        log.info("stage finetune: done earlier")
    elif epochs > 0:
        models.encoder.trainable = True
        # --finetune-lr is the classifier stage's (peak) rate; --no-pretrain with Adam keeps --lr as before
        lr = cfg.finetune_lr if (cfg.pretrain or cfg.optimizer == "sgd") else cfg.lr
        with runner.strategy.scope():
            opt = _finetune_optimizer(cfg, lr, epochs, steps=-(-n // cfg.batch_size))
            loss, mets = _loss_and_metrics(cfg)
            models.classifier.compile(optimizer=opt, loss=loss, metrics=mets)
        log.info(
            "stage finetune: %s, %d epochs, %s at lr %g, selection on %s val_accuracy",
            "end to end" if cfg.pretrain else "from scratch (--no-pretrain)",
            epochs,
            "SGD Nesterov, warm-up + cosine" if cfg.optimizer == "sgd" else "Adam",
            lr,
            val_name,
        )
        cbs = [
            keras.callbacks.ModelCheckpoint(
                str(best_path),
                monitor="val_accuracy",
                mode="max",
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=runner.state.get("best_val_accuracy"),
            ),
            keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=cfg.patience),
        ]
        if cfg.optimizer == "adam":  # a schedule already sets the SGD rate
            cbs.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_loss", factor=0.5, patience=max(2, cfg.patience // 3), min_lr=1e-5
                )
            )
        runner.fit("finetune", models.classifier, train_ds, val_ds, epochs, n, callbacks=tuple(cbs))
    if best_path.exists():
        models.classifier.load_weights(best_path)


def _finetune_optimizer(cfg: TrainConfig, lr: float, epochs: int, steps: int) -> Any:
    import keras

    if cfg.optimizer != "sgd":
        return keras.optimizers.Adam(lr)
    warm = min(cfg.warmup_epochs, epochs - 1) * steps
    sched = keras.optimizers.schedules.CosineDecay(
        lr * 0.1 if warm else lr,
        decay_steps=max(1, epochs * steps - warm),
        alpha=0.0,
        warmup_target=lr if warm else None,
        warmup_steps=warm,
    )
    return keras.optimizers.SGD(sched, momentum=0.9, nesterov=True)
