"""``edge-fer train``: autoencoder pretraining, then classifier fine-tuning, then evaluation.

The stages (:mod:`edge_fer.train.stages`, each resumable: a killed run continues where it stopped
with ``--resume``) are the autoencoder (``ae``), the head with the encoder frozen (``head``) and
fine-tuning end to end (``finetune``), with early stopping and checkpoint selection on the validation
split (PublicTest for FER2013). PrivateTest is only ever evaluated.

With ``pretrain=False`` (the ``--no-pretrain`` ablation) stages 1-2 are skipped and the same
classifier is trained from scratch for ``head_epochs + epochs`` epochs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from edge_fer.train.interrupts import InterruptWatch, watch_interrupts
from edge_fer.train.options import TrainConfig
from edge_fer.train.results import TrainMetrics
from edge_fer.train.rundir import RunDir
from edge_fer.train.space import as_output_error

from edge_fer.bundle import Preprocessing
from edge_fer.errors import DataError, EdgeFerError, write_error
from edge_fer.fsutil import atomic_write_bytes, atomic_write_json

log = logging.getLogger("edge_fer.train")

# options that shape the model or the data: a resumed run keeps the ones it started with
_FIXED_ON_RESUME = ("width", "latent_channels", "arch", "pretrain", "seed", "data", "limit")


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> TrainMetrics:
    """Run (or resume) a whole training; returns what metrics.json holds."""
    cfg.validate()
    from edge_fer.train.backend import activate, resolve_backend
    from edge_fer.train.data import load_dataset

    cfg.backend = resolve_backend(cfg.backend)  # before anything imports Keras, which fixes its backend then
    activate(cfg.backend)

    dataset = load_dataset(cfg.data, val_fraction=cfg.val_fraction, seed=cfg.seed, class_map=cfg.class_map)
    if cfg.unlabeled:  # a wrong folder is refused before the run folder is made (a rerun would find a run there)
        check_unlabeled(cfg.unlabeled)
    run, cfg, state = prepare_run_dir(cfg, resume, overwrite)
    with _log_to(run.log), watch_interrupts() as interrupts:
        try:
            return _train(cfg, run, state, dataset, interrupts)
        except EdgeFerError:
            raise
        except Exception as e:  # a full disk, in the words of h5py or TensorFlow: one line, exit 74
            err = as_output_error(run.root, e)
            if err is None:
                raise
            raise err from None


def _read_state(run: RunDir) -> dict:
    """``state.json`` of a run to resume ({} when there is none); damaged, it is one line naming it."""
    if not run.state.exists():
        return {}
    try:
        state = json.loads(run.state.read_text())
    except (OSError, ValueError) as e:
        raise EdgeFerError(
            f"cannot resume {run.root}: {run.state} is damaged ({e}); use --overwrite to start over"
        ) from None
    if not isinstance(state, dict):
        raise EdgeFerError(f"cannot resume {run.root}: {run.state} is not a JSON object; use --overwrite to start over")
    return state


def prepare_run_dir(cfg: TrainConfig, resume: bool, overwrite: bool) -> tuple[RunDir, TrainConfig, dict]:
    """The run directory, new or resumed (then with the state of its finished stages)."""
    run = RunDir(cfg.out)
    if run.config.exists():
        if resume:
            saved = TrainConfig.from_dict(run.read_config())  # unreadable: one line naming the file
            # epochs may be raised on resume; everything that shapes the model must stay the same
            for k in _FIXED_ON_RESUME:
                if getattr(saved, k) != getattr(cfg, k):
                    log.warning(
                        "--resume: keeping %s=%r from the run (asked %r)", k, getattr(saved, k), getattr(cfg, k)
                    )
                    setattr(cfg, k, getattr(saved, k))
            state = _read_state(run)
            log.info("resuming %s (stages done: %s)", run.root, ", ".join(state.get("done", [])) or "none")
            return run, cfg, state
        if not overwrite:
            raise EdgeFerError(
                f"{run.root} already holds a run: use --resume to continue it or --overwrite to start over"
            )
        shutil.rmtree(run.ckpt, ignore_errors=True)
        for p in run.root.iterdir():
            if p.is_file():
                p.unlink()
    elif resume:
        log.info("--resume: %s holds no run yet, starting a new one", run.root)
    try:
        run.ckpt.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(f"cannot create {run.root}: {e.strerror or e}", e) from None
    atomic_write_json(run.config, asdict(cfg))
    return run, cfg, {"done": [], "timing": {}}


class _RunLog(logging.FileHandler):
    """train.log. A line it cannot write (a full disk) is dropped without the logging module's
    traceback on stderr; the run itself stops at its next room check (:mod:`edge_fer.train.space`)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """The run's own log file (train.log) for everything edge-fer logs meanwhile."""
    handler = _RunLog(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("edge_fer").addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger("edge_fer").removeHandler(handler)
        handler.close()


@dataclass
class _Faces:
    """The faces training uses: the (subsampled) training split, and the validation split blurred as
    the runtime will blur field faces."""

    x: np.ndarray
    y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    val_name: str


def _train(cfg: TrainConfig, run: RunDir, state: dict, dataset, interrupts: InterruptWatch) -> TrainMetrics:
    import keras
    from edge_fer.train.backend import describe_device, keep_tensorflow_out, training_strategy

    keep_tensorflow_out()

    device = describe_device()
    log.info(
        "backend %s %s on %s, keras %s",
        device["backend"],
        device["backend_version"],
        ", ".join(device["devices"]),
        device["keras"],
    )
    from edge_fer.train import report
    from edge_fer.train.artifacts import bundle_meta, save_models, write_metrics
    from edge_fer.train.model import NetConfig
    from edge_fer.train.results import best_epoch, evaluate_splits
    from edge_fer.train.sharpness import gaussian_blur
    from edge_fer.train.stages import Models, StageRunner, finetune, pretrain_autoencoder, train_head

    keras.utils.set_random_seed(cfg.seed)
    strategy, multiple = training_strategy(device["backend"], cfg.batch_size)
    runner = StageRunner(run, state, strategy, verbose=1 if sys.stdout.isatty() else 0, interrupts=interrupts)
    net = NetConfig.from_train(cfg, num_classes=len(dataset.labels))
    va = dataset.splits["val"]
    tx, ty = _training_faces(cfg, dataset)
    sharp = _match_sharpness(cfg, runner, tx, va)
    prep = Preprocessing(margin=cfg.margin, blur_sigma=float(sharp["blur_sigma"]))
    faces = _Faces(tx, ty, gaussian_blur(va.x, prep.blur_sigma), va.y, va.name)
    models = Models.build(net, runner.strategy)

    def ae_data():
        return _autoencoder_data(cfg, faces, prep, dataset.image_size, multiple)

    pretrain_autoencoder(runner, cfg, net, models, ae_data)
    targets = _distillation_targets(cfg, runner, faces, va, dataset.labels) if cfg.teacher else None
    train_ds, val_ds = _classifier_data(cfg, faces, prep, net.num_classes, dataset.labels, multiple, *(targets or ()))
    train_head(runner, cfg, models, train_ds, val_ds, len(faces.y))
    finetune(runner, cfg, models, train_ds, val_ds, len(faces.y), faces.val_name)

    rows = runner.history.rows()
    metrics = TrainMetrics(
        splits=evaluate_splits(models.classifier, dataset, prep, multiple),
        selection={"split": faces.val_name, "monitor": "val_accuracy", "best_epoch": best_epoch(rows)},
        timing=runner.timing,
        train_images=len(faces.y),
        pretrain=cfg.pretrain,
        sharpness=sharp,
    )
    write_metrics(run, metrics, rows)
    stage1 = save_models(run, cfg, net, models, export=device["backend"] == "tensorflow")
    meta = bundle_meta(run, cfg, net, prep, dataset, int(models.classifier.count_params()), metrics, device)
    meta.save(run.metadata)
    report.write_all(run, rows, metrics, dataset, stage1, cfg, meta)
    state["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    runner.save_state()
    return metrics


def _training_faces(cfg: TrainConfig, dataset) -> tuple[np.ndarray, np.ndarray]:
    """The training split, subsampled to ``--limit``."""
    tr, va = dataset.splits["train"], dataset.splits["val"]
    tx, ty = _subsample(tr.x, tr.y, cfg.limit, cfg.seed)
    log.info(
        "train %d (%s), val %d (%s), test %s",
        len(ty),
        tr.name,
        len(va),
        va.name,
        len(dataset.splits["test"]) if "test" in dataset.splits else "-",
    )
    return tx, ty


def _match_sharpness(cfg: TrainConfig, runner, train_x: np.ndarray, va) -> dict:
    """Training faces much blurrier than real ones? Then every non-training input is low-passed to
    match (:mod:`edge_fer.train.sharpness`); measured once per run, kept in state.json."""
    from edge_fer.train.sharpness import assess

    if "sharpness" not in runner.state:
        if cfg.blur_sigma is None:
            runner.state["sharpness"] = assess(train_x, va.x)
        else:
            runner.state["sharpness"] = {"blur_sigma": float(cfg.blur_sigma), "set_by": "--blur-sigma"}
        runner.save_state()
    sharp = runner.state["sharpness"]
    if sharp.get("degraded"):
        log.warning(
            "the training faces are far blurrier than the %s faces (median Laplacian variance %.1f vs "
            "%.1f): validation, test and runtime inputs get a Gaussian blur of sigma %.2f to match "
            "(stored in the bundle's preprocessing)",
            va.name,
            sharp["train_laplacian_var"],
            sharp["val_laplacian_var"],
            float(sharp["blur_sigma"]),
        )
    return sharp


def _autoencoder_data(cfg: TrainConfig, faces: _Faces, prep: Preprocessing, image_size: int, multiple: int = 1):
    """Stage 1's (train, val, number of faces): the training faces and any ``--unlabeled`` crops."""
    from edge_fer.train.batches import make_dataset

    ax = faces.x
    if cfg.unlabeled:
        ax = np.concatenate([faces.x, load_unlabeled(cfg.unlabeled, image_size)])
    kw = {"prep": prep, "multiple": multiple, "autoencoder": True}
    return (
        make_dataset(ax, batch_size=cfg.batch_size, training=True, seed=cfg.seed, **kw),
        make_dataset(faces.val_x, batch_size=_val_batch(multiple), **kw),
        len(ax),
    )


def _distillation_targets(cfg: TrainConfig, runner, faces: _Faces, va, labels) -> tuple | None:
    """``--teacher``: the soft training targets (:mod:`edge_fer.train.distill`) and the faces they are
    for (the training faces, or with ``--teacher-augments K`` K jittered copies of them), computed when
    stages 2-3 are to run; their summary (the teachers' accuracy on the training and validation faces)
    is kept in state.json. The targets are kept in the run's checkpoints, keyed by everything they
    depend on, so a resumed run reuses them instead of labelling the faces again (with 14 views over 8
    copies that is an hour on a small CPU)."""
    if "finetune" in runner.done:
        return None
    from edge_fer.train.distill import augmented_copies, distillation_targets

    k = cfg.teacher_augments
    x = augmented_copies(faces.x, k, cfg.seed) if k else faces.x
    y = np.tile(faces.y, k or 1)
    key = _targets_key(cfg, x, y)
    # the teachers label each jittered copy as it is; the student may see it recut by the detector:
    # from the runtime's crop it learns what the teachers read in the dataset's framing
    train_x = _detector_copies(cfg, x, len(faces.y), runner.run.detector_copies)
    cached = _load_kept(runner.run.teacher_targets, key, "targets", len(x))
    if cached is not None:
        log.info("teacher targets: reusing %s (%d faces)", runner.run.teacher_targets.name, len(x))
        return cached, train_x, k or 1
    targets, summary = distillation_targets(
        cfg.teacher,
        x,
        y,
        list(labels),
        cfg.distill_weight,
        cfg.distill_temperature,
        val=(va.x, va.y),  # raw: each teacher applies its own bundle blur
        views=cfg.teacher_views,
    )
    summary["augments"] = k
    summary["detector_copies"] = cfg.detector_copies
    _save_kept(runner.run.teacher_targets, key, targets=targets)
    runner.state["distillation"] = summary
    runner.save_state()
    return targets, train_x, k or 1


def _detector_copies(cfg: TrainConfig, x: np.ndarray, n_faces: int, kept: Path) -> np.ndarray:
    """``--detector-copies N``: the first N copies recut around YuNet's box (:func:`detector_recut`).
    The recut copies are kept in the run's checkpoints, keyed by the copies, the detector's model file
    and the framing, so that a resumed run does not recut them (57k copies: 4-9 minutes on a small CPU)."""
    if not cfg.detector_copies:
        return x
    from edge_fer.train.distill import detector_recut

    from edge_fer.detect import create_detector

    detector = create_detector("yunet")
    rows = min(cfg.detector_copies, len(x) // max(n_faces, 1)) * n_faces
    key = _recut_key(cfg, x[:rows], detector)
    cached = _load_kept(kept, key, "copies", rows)
    if cached is not None:
        out = x.copy()
        out[:rows] = cached
        log.info("detector copies: reusing %s (%d copies)", kept.name, rows)
        return out
    out, recut = detector_recut(x, n_faces, cfg.detector_copies, cfg.margin, detector=detector)
    log.info("detector copies: %d of %d recut around YuNet's box", recut, rows)
    _save_kept(kept, key, copies=out[:rows])
    return out


def _recut_key(cfg: TrainConfig, copies: np.ndarray, detector: Any) -> str:
    """A digest of what the recut copies depend on: the copies, the detector's model file and
    framing, the crop margin and the detection options."""
    from edge_fer.evaluate import DetectOptions

    h = hashlib.sha256()
    model = getattr(detector, "model_path", "")
    h.update(hashlib.sha256(Path(model).read_bytes()).digest() if model else type(detector).__name__.encode())
    h.update(f"{getattr(detector, 'framing', '')}|{cfg.margin}|{DetectOptions()!r}".encode())
    h.update(np.ascontiguousarray(copies).tobytes())
    return h.hexdigest()


def _targets_key(cfg: TrainConfig, x: np.ndarray, y: np.ndarray) -> str:
    """A digest of what the teacher targets depend on: the teachers' bytes, views, weight,
    temperature, and the faces and labels they are computed for."""
    from edge_fer.train.distill import teacher_files

    h = hashlib.sha256()
    for path in cfg.teacher:
        for f in teacher_files(path):
            h.update(hashlib.sha256(f.read_bytes()).digest())
    h.update(f"{cfg.teacher_views}|{cfg.distill_weight}|{cfg.distill_temperature}".encode())
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def _load_kept(path: Path, key: str, name: str, n: int) -> np.ndarray | None:
    """The array ``name`` kept in ``path`` for ``key`` (``n`` rows); None when absent, stale or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            arr = z[name]  # each z[name] reads (and inflates) the member again
    except (OSError, KeyError, ValueError):
        return None
    if len(arr) != n:
        return None
    return arr.astype(np.float32, copy=False) if arr.dtype.kind == "f" else arr


def _save_kept(path: Path, key: str, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _classifier_data(
    cfg: TrainConfig,
    faces: _Faces,
    prep: Preprocessing,
    num_classes: int,
    labels,
    multiple: int = 1,
    targets: np.ndarray | None = None,
    target_x: np.ndarray | None = None,
    copies: int = 1,
):
    """Stages 2-3's (train, val) datasets: class-weighted, one-hot labels with label smoothing, or
    ``targets`` (soft, from teachers) in place of the training labels, for the faces ``target_x`` (the
    training faces, or ``copies`` jittered copies of them)."""
    from edge_fer.train.batches import class_weights, make_dataset

    cw = class_weights(faces.y, num_classes, cfg.class_weight_power)
    log.info("class weights: %s", ", ".join(f"{n}={w:.2f}" for n, w in zip(labels, cw)))
    kw = {"prep": prep, "multiple": multiple}
    onehot = num_classes if (cfg.label_smoothing > 0 or targets is not None) else None
    train_ds = make_dataset(
        faces.x if target_x is None else target_x,
        faces.y if targets is None else targets,
        batch_size=cfg.batch_size,
        training=True,
        seed=cfg.seed,
        sample_weight=np.tile(cw[faces.y], copies),
        erase=cfg.erase,
        one_hot=onehot,
        copies=copies,
        **kw,
    )
    val_ds = make_dataset(faces.val_x, faces.val_y, batch_size=_val_batch(multiple), one_hot=onehot, **kw)
    return train_ds, val_ds


def _val_batch(multiple: int) -> int:
    """The validation batch: 256 faces, or the nearest multiple of the data-parallel devices."""
    return max(multiple, 256 // multiple * multiple)


def _subsample(x: np.ndarray, y: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not limit or len(y) <= limit:
        return x, y
    from edge_fer.train.data import stratified_split

    _, idx = stratified_split(y, limit / len(y), seed)
    return x[idx], y[idx]


def check_unlabeled(folder: str) -> None:
    """``--unlabeled`` is a folder with at least one readable image (read until the first one is)."""
    from edge_fer.train.image_folders import iter_images

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"--unlabeled {folder}: not a folder")
    if not any(img is not None for img in iter_images(root, 48)):
        raise DataError(f"--unlabeled {folder}: no readable images")


def load_unlabeled(folder: str, size: int) -> np.ndarray:
    """Every readable image under ``folder`` as (N, size, size) uint8; corrupt ones skipped and counted."""
    from edge_fer.train.image_folders import read_images

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"--unlabeled {folder}: not a folder")
    imgs, bad = read_images(root, size)
    if bad:
        log.warning("--unlabeled: skipped %d unreadable image(s) in %s", bad, folder)
    if not imgs:
        raise DataError(f"--unlabeled {folder}: no readable images")
    log.info("--unlabeled: %d extra face crops for autoencoder pretraining", len(imgs))
    return np.stack(imgs)
