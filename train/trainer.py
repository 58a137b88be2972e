"""``edge-fer train``: autoencoder pretraining, then classifier fine-tuning, then evaluation.

Stages (each resumable: a killed run continues where it stopped with ``--resume``):

1. ``ae``        the convolutional autoencoder on the training faces (+ optional unlabeled crops), MSE.
2. ``head``      encoder frozen, classifier head trained.
3. ``finetune``  everything trained at a lower rate; early stopping and checkpoint selection on the
                 validation split (PublicTest for FER2013). PrivateTest is only ever evaluated.

With ``pretrain=False`` (the ``--no-pretrain`` ablation) stages 1-2 are skipped and the same
classifier is trained from scratch for ``head_epochs + epochs`` epochs.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_fer import __version__
from edge_fer.bundle import ModelMeta, Preprocessing
from edge_fer.errors import DataError, EdgeFerError

log = logging.getLogger("edge_fer.train")

STAGES = ("ae", "head", "finetune")


@dataclass
class TrainConfig:
    data: str
    out: str
    ae_epochs: int = 20
    epochs: int = 40
    head_epochs: int = 3
    batch_size: int = 128
    ae_lr: float = 1e-3
    lr: float = 1e-3
    finetune_lr: float = 3e-4
    patience: int = 8
    seed: int = 0
    width: int = 16
    latent_channels: int = 32
    arch: str = "v1"
    optimizer: str = "adam"  # adam: Adam + ReduceLROnPlateau; sgd: SGD Nesterov + warm-up + cosine decay
    label_smoothing: float = 0.0
    warmup_epochs: int = 3
    erase: float = 0.0  # probability of random erasing (one grey rectangle) per training face
    dropout: float = 0.4
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    class_map: list[str] = field(default_factory=list)
    unlabeled: str | None = None
    init_ae: str | None = None  # stage 1 taken from another run (its checkpoints/ae.weights.h5)
    pretrain: bool = True
    class_weight_power: float = 0.5
    limit: int = 0
    margin: float = 0.1
    blur_sigma: float | None = None  # None: measure (edge_fer.train.sharpness)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def validate(self) -> None:
        for name in ("ae_epochs", "epochs", "head_epochs", "limit"):
            if getattr(self, name) < 0:
                raise EdgeFerError(f"--{name.replace('_', '-')} must be >= 0")
        if self.batch_size < 1:
            raise EdgeFerError("--batch-size must be >= 1")
        if self.optimizer not in ("adam", "sgd"):
            raise EdgeFerError(f"--optimizer must be adam or sgd, not {self.optimizer!r}")
        from edge_fer.train.model import ARCHS

        if self.arch not in ARCHS:
            raise EdgeFerError(f"--arch must be one of {', '.join(ARCHS)}, not {self.arch!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise EdgeFerError("--label-smoothing must be in [0, 1)")
        if not 0.0 <= self.erase <= 1.0:
            raise EdgeFerError("--erase must be in [0, 1]")
        if not 0.0 < self.val_fraction < 1.0:
            raise EdgeFerError("--val-fraction must be between 0 and 1")
        if self.epochs + (self.head_epochs if self.pretrain else 0) == 0:
            raise EdgeFerError("nothing to train: --epochs (and --head-epochs) are 0")


class RunDir:
    """The files of one training run."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.ckpt = self.root / "checkpoints"

    def __getattr__(self, name: str) -> Path:  # run.metrics -> root/metrics.json etc.
        names = {
            "config": "config.json", "state": "state.json", "metrics": "metrics.json",
            "history": "history.json", "history_csv": "history.csv", "history_jsonl": "history.jsonl", "metadata": "metadata.json",
            "model": "model.keras", "encoder": "encoder.keras", "decoder": "decoder.keras",
            "autoencoder": "autoencoder.keras", "saved_model": "saved_model", "card": "MODEL_CARD.md",
            "curves": "curves.png", "confusion": "confusion_matrix.png", "recon": "reconstructions.png",
            "log": "train.log",
        }
        if name in names:
            return self.root / names[name]
        raise AttributeError(name)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def prepare_run_dir(cfg: TrainConfig, resume: bool, overwrite: bool) -> tuple[RunDir, TrainConfig, dict]:
    run = RunDir(cfg.out)
    if run.config.exists():
        if resume:
            saved = TrainConfig.from_dict(json.loads(run.config.read_text()))
            # epochs may be raised on resume; everything that shapes the model must stay the same
            for k in ("width", "latent_channels", "arch", "pretrain", "seed", "data", "limit"):
                if getattr(saved, k) != getattr(cfg, k):
                    log.warning("--resume: keeping %s=%r from the run (asked %r)", k, getattr(saved, k), getattr(cfg, k))
                    setattr(cfg, k, getattr(saved, k))
            state = json.loads(run.state.read_text()) if run.state.exists() else {}
            log.info("resuming %s (stages done: %s)", run.root, ", ".join(state.get("done", [])) or "none")
            return run, cfg, state
        if not overwrite:
            raise EdgeFerError(f"{run.root} already holds a run: use --resume to continue it or --overwrite to start over")
        import shutil

        shutil.rmtree(run.ckpt, ignore_errors=True)
        for p in run.root.iterdir():
            if p.is_file():
                p.unlink()
    elif resume:
        log.info("--resume: %s holds no run yet, starting a new one", run.root)
    try:
        run.ckpt.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeFerError(f"cannot create {run.root}: {e.strerror or e}") from None
    _write_json(run.config, asdict(cfg))
    return run, cfg, {"done": [], "timing": {}}


def choose_strategy():
    """One device, several GPUs, or multi-worker from TF_CONFIG: the same command everywhere."""
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        log.info("TF_CONFIG set: MultiWorkerMirroredStrategy")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("%d GPUs: MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    if gpus:
        log.info("GPU: %s", gpus[0].name)
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    log.info("no GPU found: training on the CPU (%d cores)", os.cpu_count() or 1)
    return tf.distribute.get_strategy()


def _subsample(x: np.ndarray, y: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not limit or len(y) <= limit:
        return x, y
    from edge_fer.train.data import stratified_split

    _, idx = stratified_split(y, limit / len(y), seed)
    return x[idx], y[idx]


def load_unlabeled(folder: str, size: int) -> np.ndarray:
    """Every readable image under ``folder`` as (N, size, size) uint8; corrupt ones skipped and counted."""
    from edge_fer.train.data import IMAGE_EXTS, decode_gray

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"--unlabeled {folder}: not a folder")
    imgs, bad = [], 0
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_EXTS and p.is_file():
            img = decode_gray(p.read_bytes(), size)
            if img is None:
                bad += 1
            else:
                imgs.append(img)
    if bad:
        log.warning("--unlabeled: skipped %d unreadable image(s) in %s", bad, folder)
    if not imgs:
        raise DataError(f"--unlabeled {folder}: no readable images")
    log.info("--unlabeled: %d extra face crops for autoencoder pretraining", len(imgs))
    return np.stack(imgs)


class _StageLogger:
    """Appends every epoch's logs (with its stage) to history.jsonl, so a resumed run keeps one history."""

    def __init__(self, path: Path):
        self.path = path

    def callback(self, stage: str):
        from tensorflow import keras

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
                log.info("%s epoch %d: %s", stage, epoch + 1,
                         " ".join(f"{k}={v:.4f}" for k, v in logs.items() if k != "lr"))

        return _CB()

    def rows(self) -> list[dict]:
        """One row per epoch; an epoch redone after a resume replaces the earlier row."""
        if not self.path.exists():
            return []
        latest: dict[tuple, dict] = {}
        for line in self.path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                latest[(STAGES.index(r["stage"]), r["epoch"])] = r
        return [latest[k] for k in sorted(latest)]

    @staticmethod
    def write_csv(rows: list[dict], path: Path) -> None:
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)


def export_autoencoder(run: RunDir, mcfg):
    """Save the stage-1 autoencoder (and its encoder and decoder) from its own checkpoint.

    Fine-tuning changes the encoder it shares with the classifier, so the pair that reconstructs
    faces — the reconstruction-error quality signal — is rebuilt from ``checkpoints/ae.weights.h5``."""
    from edge_fer.train.model import build_autoencoder, build_decoder, build_encoder

    encoder, decoder = build_encoder(mcfg), build_decoder(mcfg)
    autoencoder = build_autoencoder(encoder, decoder)
    autoencoder.load_weights(run.ckpt / "ae.weights.h5")
    encoder.save(run.encoder)
    decoder.save(run.decoder)
    autoencoder.save(run.autoencoder)
    return autoencoder


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Run (or resume) a whole training; returns metrics.json's content."""
    cfg.validate()
    from edge_fer.train.data import load_dataset

    dataset = load_dataset(cfg.data, val_fraction=cfg.val_fraction, seed=cfg.seed, class_map=cfg.class_map)
    run, cfg, state = prepare_run_dir(cfg, resume, overwrite)
    handler = logging.FileHandler(run.log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("edge_fer").addHandler(handler)
    try:
        return _train(cfg, run, state, dataset)
    finally:
        logging.getLogger("edge_fer").removeHandler(handler)
        handler.close()


def _train(cfg: TrainConfig, run: RunDir, state: dict, dataset) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow import keras

    from edge_fer.train.metrics import classification_report
    from edge_fer.train.model import ModelConfig, build_autoencoder, build_classifier, build_decoder, build_encoder
    from edge_fer.train.pipeline import class_weights, make_dataset

    keras.utils.set_random_seed(cfg.seed)
    verbose = 1 if sys.stdout.isatty() else 0
    strategy = choose_strategy()
    mcfg = ModelConfig(width=cfg.width, latent_channels=cfg.latent_channels, arch=cfg.arch, dropout=cfg.dropout,
                       weight_decay=cfg.weight_decay, num_classes=len(dataset.labels))
    tr, va = dataset.splits["train"], dataset.splits["val"]
    tx, ty = _subsample(tr.x, tr.y, cfg.limit, cfg.seed)
    log.info("train %d (%s), val %d (%s), test %s", len(ty), tr.name, len(va), va.name,
             len(dataset.splits["test"]) if "test" in dataset.splits else "-")
    history = _StageLogger(run.history_jsonl)
    timing = state.setdefault("timing", {})
    done: list = state.setdefault("done", [])

    def save_state():
        _write_json(run.state, state)

    # Training faces much blurrier than real ones? Then every non-training input is low-passed to match.
    from edge_fer.train.sharpness import assess, gaussian_blur

    if "sharpness" not in state:
        if cfg.blur_sigma is None:
            state["sharpness"] = assess(tx, va.x)
        else:
            state["sharpness"] = {"blur_sigma": float(cfg.blur_sigma), "set_by": "--blur-sigma"}
        save_state()
    sharp = state["sharpness"]
    sigma = float(sharp["blur_sigma"])
    if sharp.get("degraded"):
        log.warning("the training faces are far blurrier than the %s faces (median Laplacian variance %.1f vs "
                    "%.1f): validation, test and runtime inputs get a Gaussian blur of sigma %.2f to match "
                    "(stored in the bundle's preprocessing)", va.name, sharp["train_laplacian_var"],
                    sharp["val_laplacian_var"], sigma)
    va_x = gaussian_blur(va.x, sigma)

    with strategy.scope():
        encoder = build_encoder(mcfg)
        decoder = build_decoder(mcfg)
        autoencoder = build_autoencoder(encoder, decoder)
        classifier = build_classifier(encoder, mcfg)

    def fit_stage(stage, model, train_ds, val_ds, epochs, n_images, callbacks=(), class_weight=None):
        backup = run.ckpt / f"{stage}_backup"
        cbs = [keras.callbacks.BackupAndRestore(str(backup)), history.callback(stage), *callbacks]
        t0 = time.perf_counter()
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=verbose, callbacks=cbs, shuffle=False)
        dt = time.perf_counter() - t0
        t = timing.setdefault(stage, {"seconds": 0.0, "epochs": 0})
        t["seconds"] = round(t["seconds"] + dt, 1)
        t["epochs"] = epochs
        t["images_per_s"] = round(n_images * epochs / max(t["seconds"], 1e-9), 1)
        model.save_weights(run.ckpt / f"{stage}.weights.h5")
        done.append(stage)
        save_state()

    # --- stage 1: autoencoder ------------------------------------------------------------------
    if cfg.pretrain and cfg.init_ae and "ae" not in done:
        src = Path(cfg.init_ae)
        src = src / "checkpoints" / "ae.weights.h5" if src.is_dir() else src
        if not src.is_file():
            raise DataError(f"--init-ae {cfg.init_ae}: no autoencoder weights there (want a run dir or ae.weights.h5)")
        try:
            autoencoder.load_weights(src)
        except (ValueError, OSError) as e:
            raise DataError(f"--init-ae {src}: weights do not fit this model (same --arch, --width and "
                            f"--latent-channels needed): {str(e).splitlines()[0][:200]}") from None
        import shutil

        shutil.copyfile(src, run.ckpt / "ae.weights.h5")
        log.info("stage ae: taken from %s (not retrained)", src)
        timing["ae"] = {"seconds": 0.0, "epochs": 0, "from": str(src)}
        done.append("ae")
        save_state()
    elif cfg.pretrain and (cfg.ae_epochs > 0 or "ae" in done):
        if "ae" in done:
            autoencoder.load_weights(run.ckpt / "ae.weights.h5")
            log.info("stage ae: done earlier, weights restored")
        else:
            ax = tx
            if cfg.unlabeled:
                ax = np.concatenate([tx, load_unlabeled(cfg.unlabeled, dataset.image_size)])
            log.info("stage ae: autoencoder pretraining, %d epochs on %d faces (bottleneck %d values < %d pixels)",
                     cfg.ae_epochs, len(ax), mcfg.bottleneck_size, mcfg.input_size ** 2)
            with strategy.scope():
                autoencoder.compile(optimizer=keras.optimizers.Adam(cfg.ae_lr), loss="mse")
            fit_stage("ae", autoencoder,
                      make_dataset(ax, batch_size=cfg.batch_size, training=True, seed=cfg.seed, autoencoder=True),
                      make_dataset(va_x, batch_size=256, autoencoder=True), cfg.ae_epochs, len(ax))

    cw = class_weights(ty, mcfg.num_classes, cfg.class_weight_power)
    log.info("class weights: %s", ", ".join(f"{n}={w:.2f}" for n, w in zip(dataset.labels, cw)))
    onehot = mcfg.num_classes if cfg.label_smoothing > 0 else None
    train_ds = make_dataset(tx, ty, batch_size=cfg.batch_size, training=True, seed=cfg.seed, sample_weight=cw[ty],
                            erase=cfg.erase, one_hot=onehot)
    val_ds = make_dataset(va_x, va.y, batch_size=256, one_hot=onehot)

    def loss_and_metrics():
        if onehot:
            return (keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                    [keras.metrics.CategoricalAccuracy(name="accuracy")])
        return "sparse_categorical_crossentropy", [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    # --- stage 2: head with the encoder frozen ---------------------------------------------------
    if cfg.pretrain and cfg.head_epochs > 0:
        if "head" in done:
            classifier.load_weights(run.ckpt / "head.weights.h5")
        else:
            encoder.trainable = False
            with strategy.scope():
                loss, mets = loss_and_metrics()
                classifier.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=loss, metrics=mets)
            log.info("stage head: encoder frozen, %d epochs", cfg.head_epochs)
            fit_stage("head", classifier, train_ds, val_ds, cfg.head_epochs, len(ty))
            encoder.trainable = True

    # --- stage 3: fine-tune end to end (or from scratch) ---------------------------------------
    best_path = run.ckpt / "best.weights.h5"
    ft_epochs = cfg.epochs if cfg.pretrain else cfg.epochs + cfg.head_epochs
    if "finetune" in done:
        log.info("stage finetune: done earlier")
    elif ft_epochs > 0:
        encoder.trainable = True
        # --finetune-lr is the classifier stage's (peak) rate; --no-pretrain with Adam keeps --lr as before
        lr = cfg.finetune_lr if (cfg.pretrain or cfg.optimizer == "sgd") else cfg.lr
        steps = -(-len(ty) // cfg.batch_size)
        with strategy.scope():
            if cfg.optimizer == "sgd":
                warm = min(cfg.warmup_epochs, ft_epochs - 1) * steps
                sched = keras.optimizers.schedules.CosineDecay(
                    lr * 0.1 if warm else lr, decay_steps=max(1, ft_epochs * steps - warm), alpha=0.0,
                    warmup_target=lr if warm else None, warmup_steps=warm)
                opt = keras.optimizers.SGD(sched, momentum=0.9, nesterov=True)
            else:
                opt = keras.optimizers.Adam(lr)
            loss, mets = loss_and_metrics()
            classifier.compile(optimizer=opt, loss=loss, metrics=mets)
        log.info("stage finetune: %s, %d epochs, %s at lr %g, selection on %s val_accuracy",
                 "end to end" if cfg.pretrain else "from scratch (--no-pretrain)", ft_epochs,
                 "SGD Nesterov, warm-up + cosine" if cfg.optimizer == "sgd" else "Adam", lr, va.name)
        cbs = [
            keras.callbacks.ModelCheckpoint(str(best_path), monitor="val_accuracy", mode="max",
                                            save_best_only=True, save_weights_only=True,
                                            initial_value_threshold=state.get("best_val_accuracy")),
            keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=cfg.patience),
        ]
        if cfg.optimizer == "adam":  # a schedule already sets the SGD rate
            cbs.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                         patience=max(2, cfg.patience // 3), min_lr=1e-5))
        fit_stage("finetune", classifier, train_ds, val_ds, ft_epochs, len(ty), callbacks=cbs)
    if best_path.exists():
        classifier.load_weights(best_path)

    # --- evaluation -----------------------------------------------------------------------------
    rows = history.rows()
    ft_rows = [r for r in rows if r["stage"] == "finetune" and "val_accuracy" in r]
    best_epoch = max(ft_rows, key=lambda r: r["val_accuracy"])["epoch"] if ft_rows else None
    metrics: dict = {}
    predict = tf.function(lambda x: classifier(x, training=False))
    for key in ("val", "test"):
        split = dataset.splits.get(key)
        if split is None:
            continue
        probs = np.concatenate([predict(b).numpy() for b in make_dataset(gaussian_blur(split.x, sigma), batch_size=512)])
        metrics[split.name] = classification_report(split.y, probs.argmax(1), dataset.labels)
        log.info("%s: accuracy %.4f, macro-F1 %.4f (n=%d)", split.name, metrics[split.name]["accuracy"],
                 metrics[split.name]["macro_f1"], metrics[split.name]["n"])
    metrics["selection"] = {"split": va.name, "monitor": "val_accuracy", "best_epoch": best_epoch}
    metrics["timing"] = timing
    metrics["train_images"] = len(ty)
    metrics["pretrain"] = cfg.pretrain
    metrics["sharpness"] = sharp
    _write_json(run.metrics, metrics)
    _write_json(run.history, rows)
    _StageLogger.write_csv(rows, run.history_csv)

    # --- artefacts ------------------------------------------------------------------------------
    classifier.save(run.model)
    stage1 = export_autoencoder(run, mcfg) if (cfg.pretrain and (cfg.ae_epochs > 0 or cfg.init_ae)) else None
    try:
        classifier.export(str(run.saved_model), verbose=False)
    except Exception as e:  # the .keras file is the primary artefact; export is a convenience
        log.warning("SavedModel export failed (%s); convert will read model.keras", e)
    meta = ModelMeta(
        labels=tuple(dataset.labels), input_height=mcfg.input_size, input_width=mcfg.input_size, input_channels=1,
        preprocessing=Preprocessing(margin=cfg.margin, blur_sigma=sigma),
        provenance={
            "run_dir": str(run.root.resolve()), "dataset": str(Path(cfg.data).resolve()),
            "dataset_kind": dataset.report.kind, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "edge_fer": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "seed": cfg.seed, "pretrain": cfg.pretrain, "params": int(classifier.count_params()),
            "model_config": mcfg.to_dict(),
        },
        metrics={k: {"accuracy": round(v["accuracy"], 4), "macro_f1": round(v["macro_f1"], 4), "n": v["n"]}
                 for k, v in metrics.items() if isinstance(v, dict) and "accuracy" in v},
    )
    meta.save(run.metadata)
    from edge_fer.train import report

    report.write_all(run, rows, metrics, dataset, stage1,
                     cfg, meta)
    state["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_json(run.state, state)
    return metrics

