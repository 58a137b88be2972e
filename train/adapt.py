"""``edge-fer adapt``: adapt a trained run to a new camera from unlabeled face crops of that camera.

Input: a run directory (``model.keras``, ``metadata.json``, ``config.json``, the stage-1
``autoencoder.keras``) and a folder of face crops from the new camera, such as the ones
``edge-fer run --save-crops DIR`` collects. Output: a new run directory that ``edge-fer convert``
turns into a bundle as usual (``--write-quality-gate`` included).

What it does (each step measured in ``benchmarks/adapt_shift.py``; docs/autoencoder.md):

1. **Batch-norm re-estimation** of the classifier: every BatchNormalization layer's moving mean and
   variance are recomputed (a cumulative average over the whole set, not an EMA) on the new crops
   mixed with ``mix`` (default 2) times as many of the original training faces, so the network normalizes
   the new camera's statistics without forgetting the old ones (``mix`` 1 gains more on the new camera
   but costs more than a point on the old one: docs/autoencoder.md). No weight changes, no labels.
2. The autoencoder is copied unchanged by default: ``edge-fer convert --write-quality-gate`` of the adapted run
   calibrates the crop-quality gate's threshold (:mod:`edge_fer.quality`) on the new camera's own crops,
   which is what makes the gate work there. ``ae_epochs`` > 0 continues its reconstruction training on
   the same mix (batch norm frozen, a low Adam rate): it reconstructs everything better, non-faces
   included, and the gate then tells faces from non-faces *worse* (measured; docs/autoencoder.md). So does
   re-estimating the autoencoder's own batch-norm statistics, which is therefore not done.
3. ``calibration.npz``: the new crops with the adapted model's predicted labels, for
   ``edge-fer convert OUT --calib-data OUT/calibration.npz`` (int8 ranges from the new camera).

Bad input (an empty or unreadable crop folder, fewer than :data:`MIN_CROPS` crops, a run directory
without an autoencoder) is a one-line :class:`~edge_fer.errors.EdgeFerError`, checked before
TensorFlow is imported.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from edge_fer.train.adapt_options import AdaptOptions
from edge_fer.train.interrupts import watch_interrupts
from edge_fer.train.rundir import RunDir
from edge_fer.train.space import as_output_error, bytes_needed, ensure_space

from edge_fer.bundle import ModelMeta
from edge_fer.errors import DataError, EdgeFerError, ModelError, write_error
from edge_fer.fsutil import atomic_write_json, replace_durably

log = logging.getLogger("edge_fer.train.adapt")

MIN_CROPS = 100  # fewer crops give batch-norm statistics that are mostly noise (docs/autoencoder.md)


def _check_run(run: RunDir) -> tuple[ModelMeta, dict]:
    root = run.root
    if not root.is_dir():
        raise ModelError(f"{root} is not a run directory")
    if not run.model.is_file():
        raise ModelError(f"{root} is not a run directory (no model.keras in it)")
    if not run.autoencoder.is_file():
        raise ModelError(
            f"{root} has no autoencoder (autoencoder.keras): adapt needs a run trained with autoencoder pretraining"
        )
    return run.read_meta() or ModelMeta(), run.read_config()


def load_crops(folder: Path, size: int) -> np.ndarray:
    """The readable images under ``folder`` as (N, size, size) uint8, at least :data:`MIN_CROPS`."""
    from edge_fer.train.image_folders import read_images

    if not folder.exists():
        raise DataError(f"--unlabeled {folder}: does not exist")
    if not folder.is_dir():
        raise DataError(f"--unlabeled {folder}: not a folder")
    imgs, bad = read_images(folder, size)
    if not imgs:
        what = f"{bad} image file(s), none readable" if bad else "no image files"
        raise DataError(f"--unlabeled {folder}: {what}")
    if len(imgs) < MIN_CROPS:
        raise DataError(f"--unlabeled {folder}: only {len(imgs)} readable crop(s); adapt needs at least {MIN_CROPS}")
    if bad:
        log.warning("--unlabeled: skipped %d unreadable image(s) in %s", bad, folder)
    return np.stack(imgs)


def _resolve_data(raw: Any, run: Path) -> Path | None:
    """The dataset a run's config.json names, as convert finds it (cwd, the run dir, its parent), absolute."""
    found = RunDir(run).find_data(raw)
    return found.resolve() if found is not None else None


def _original_faces(opts: AdaptOptions, cfg: dict, n: int, size: int) -> tuple[np.ndarray, str]:
    raw = opts.data or cfg.get("data")
    if not raw:
        raise DataError("the run's config.json names no dataset: pass --data with its training faces (or --mix 0)")
    p = _resolve_data(raw, opts.run_dir)
    if p is None:
        raise DataError(f"the original faces {raw} were not found: pass --data (or --mix 0)")
    rng = np.random.default_rng(opts.seed)
    if p.suffix.lower() == ".npz":  # already-cropped faces (x: uint8 (N, H, W)), as convert reads them
        try:
            with np.load(p, allow_pickle=False) as z:
                x = np.asarray(z["x"])
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"cannot read the original faces {p}: {e}") from None
        x = x[..., 0] if x.ndim == 4 else x
        return x[rng.choice(len(x), size=min(n, len(x)), replace=False)].astype(np.uint8), str(p)
    from edge_fer.train.data import load_dataset

    ds = load_dataset(
        str(p),
        val_fraction=cfg.get("val_fraction", 0.1),
        seed=cfg.get("seed", 0),
        image_size=size,
        class_map=cfg.get("class_map") or None,
    )
    x = ds.splits["train"].x
    idx = rng.choice(len(x), size=min(n, len(x)), replace=False)
    return x[idx], str(p)


def _check_out(opts: AdaptOptions) -> None:
    out, run = opts.out, opts.run_dir
    if out.resolve() == run.resolve():
        raise EdgeFerError("--output must differ from the run directory (adapt never changes the original run)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not opts.overwrite or not out.is_dir():
            raise EdgeFerError(f"--output {out} exists and is not empty: pass --overwrite or choose another folder")


def reestimate_bn(model: Any, x: np.ndarray, batch_size: int = 256) -> int:
    """Recompute every BatchNormalization layer's moving mean/variance of ``model`` on ``x`` (float
    model inputs) as a cumulative average over the batches. Returns the number of layers updated."""
    import keras

    bns = [ly for ly in _all_layers(model) if isinstance(ly, keras.layers.BatchNormalization)]
    if not bns:
        return 0
    saved = [ly.momentum for ly in bns]
    for ly in bns:  # start from zero so the first batch sets the statistics
        ly.moving_mean.assign(np.zeros(ly.moving_mean.shape, np.float32))
        ly.moving_variance.assign(np.ones(ly.moving_variance.shape, np.float32))
    try:
        for k, i in enumerate(range(0, len(x), batch_size), start=1):
            for ly in bns:
                ly.momentum = 1.0 - 1.0 / k  # moving = moving * m + batch * (1 - m): the running mean
            model(x[i : i + batch_size], training=True)
    finally:
        for ly, m in zip(bns, saved):
            ly.momentum = m
    return len(bns)


def _all_layers(model: Any):
    for ly in model.layers:
        if hasattr(ly, "layers") and ly is not model:
            yield from _all_layers(ly)
        else:
            yield ly


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float32)


def _recon_mse(ae: Any, x: np.ndarray) -> float:
    r = _predict(ae, x)
    return float(np.mean((r - x) ** 2))


def adapt(opts: AdaptOptions) -> dict:
    """Adapt ``opts.run_dir`` to the camera of ``opts.unlabeled``; writes ``opts.out``; returns the report."""
    opts.validate()
    run = RunDir(opts.run_dir)
    meta, cfg = _check_run(run)
    _check_out(opts)
    new, orig, orig_src = _faces(opts, meta, cfg)

    from edge_fer.train._tf import require_tensorflow

    require_tensorflow("edge-fer adapt")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # predict() on several models: retracing notes
    from edge_fer.convert.quantize import load_keras_model

    keras.utils.set_random_seed(opts.seed)
    t0 = time.perf_counter()
    x_new, x_orig, x_mix = _model_inputs(meta, new, orig, opts.seed)
    model = load_keras_model(run.model)
    before = _predict(model, x_new)
    bn_layers = reestimate_bn(model, x_mix) if opts.bn else 0
    after = _predict(model, x_new)
    ae = load_keras_model(run.autoencoder)
    ae_report = _adapt_autoencoder(ae, x_new, x_orig, x_mix, opts)

    y_pseudo = after.argmax(1).astype(np.int64)
    labels = list(meta.labels)
    report = {
        "format": "edge-fer-adapt-report",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_run": str(run.root.resolve()),
        "unlabeled": str(opts.unlabeled.resolve()),
        "crops": int(len(new)),
        "original_faces": int(len(orig)),
        "original_source": orig_src,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "bn_layers_reestimated": bn_layers,
        "autoencoder": ae_report,
        "predicted_on_new_crops": {
            "before": {c: int(n) for c, n in zip(labels, np.bincount(before.argmax(1), minlength=len(labels)))},
            "after": {c: int(n) for c, n in zip(labels, np.bincount(y_pseudo, minlength=len(labels)))},
            "changed": round(float(np.mean(before.argmax(1) != y_pseudo)), 4),
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    prov = {
        **meta.provenance,
        "adapted": {
            "from_run": str(run.root.resolve()),
            "unlabeled": str(opts.unlabeled.resolve()),
            "crops": int(len(new)),
            "original_faces": int(len(orig)),
            "bn": opts.bn,
            "ae_epochs": opts.ae_epochs,
            "at": report["created"],
        },
        "run_dir": str(opts.out.resolve()),
    }
    # the adapted run: files first into a temp folder, then renamed into place; a failure removes it
    tmp = RunDir(opts.out.with_name(f".{opts.out.name}.adapt-tmp"))
    try:
        _write_run(tmp, run, cfg, opts, (model, ae), (new, y_pseudo), replace(meta, provenance=prov), report)
    except BaseException as e:  # Ctrl-C and SIGTERM too: the staging folder goes with the failure
        shutil.rmtree(tmp.root, ignore_errors=True)
        err = None if isinstance(e, EdgeFerError) else as_output_error(opts.out.parent, e, hint=False)
        if err is None:  # h5py's or TensorFlow's words for a full disk become one line, exit 74
            raise
        raise err from None
    log.info("adapted run written to %s (%.1f s)", opts.out, report["seconds"])
    return report


def _write_run(
    tmp: RunDir,
    run: RunDir,
    cfg: dict,
    opts: AdaptOptions,
    models: tuple[Any, Any],
    crops: tuple[np.ndarray, np.ndarray],
    meta: ModelMeta,
    report: dict,
) -> None:
    """The adapted run's files (``models``: classifier and autoencoder; ``crops``: the new crops and
    their pseudo-labels) in ``tmp``, then ``tmp`` renamed to ``opts.out``."""
    model, ae = models
    new, y_pseudo = crops
    # room first: h5py on a full disk fails with tracebacks or a crash, not an error (edge_fer.train.space)
    need = 2 * bytes_needed(model) + 3 * bytes_needed(ae) + new.nbytes
    ensure_space(opts.out.parent, need, f"the adapted run {opts.out}", hint=False)
    shutil.rmtree(tmp.root, ignore_errors=True)
    # Ctrl-C while the files are written is raised between two files (edge_fer.train.interrupts)
    with watch_interrupts(at_once=False) as interrupts:
        try:
            tmp.ckpt.mkdir(parents=True)
        except OSError as e:  # named as the folder asked for, not the hidden one beside it
            raise write_error(f"cannot write {opts.out}: {e.strerror or e}", e) from None
        interrupts.check()
        _write_models(tmp, run, cfg, opts.out, model, ae)
        interrupts.check()
        np.savez_compressed(tmp.calibration, x=new, y=y_pseudo, labels=np.asarray(meta.labels))
        meta.save(tmp.metadata)
        atomic_write_json(tmp.adapt_report, report)
        interrupts.check()
    # --overwrite: the old run is moved aside first and removed only once the new one is in place, so
    # an interrupt in between never leaves neither
    old = opts.out.with_name(f".{opts.out.name}.adapt-old")
    shutil.rmtree(old, ignore_errors=True)
    if opts.out.exists():
        os.replace(opts.out, old)
    try:
        replace_durably(tmp.root, opts.out)
    except BaseException:
        if old.exists() and not opts.out.exists():
            os.replace(old, opts.out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _faces(opts: AdaptOptions, meta: ModelMeta, cfg: dict) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(the new camera's crops, original training faces mixed in, where those came from)."""
    size = meta.input_height
    new = load_crops(opts.unlabeled, size)
    n_orig = int(round(opts.mix * len(new)))
    if n_orig:
        orig, orig_src = _original_faces(opts, cfg, n_orig, size)
    else:
        orig, orig_src = np.zeros((0, size, size), np.uint8), None
    log.info("adapting %s to %d crops from %s (+ %d original faces)", opts.run_dir, len(new), opts.unlabeled, len(orig))
    return new, orig, orig_src


def _model_inputs(meta: ModelMeta, new: np.ndarray, orig: np.ndarray, seed: int):
    """Float model inputs: the new crops (field faces: the runtime's preprocessing), the original
    faces (as trained) and the two mixed, shuffled."""
    from edge_fer.convert.data import float_model_input

    ch = meta.input_channels
    x_new = float_model_input(new, meta.preprocessing, ch, field=True)
    x_orig = float_model_input(orig, meta.preprocessing, ch, field=False)
    x_mix = np.concatenate([x_new, x_orig])
    return x_new, x_orig, x_mix[np.random.default_rng(seed).permutation(len(x_mix))]


def _adapt_autoencoder(
    ae: Any, x_new: np.ndarray, x_orig: np.ndarray, x_mix: np.ndarray, opts: AdaptOptions
) -> dict[str, Any]:
    """Continue the autoencoder's training on the mix (``--ae-epochs``); its MSE before and after."""
    import keras

    ae_report: dict[str, Any] = {"epochs": opts.ae_epochs, "mse_new_before": round(_recon_mse(ae, x_new), 6)}
    if len(x_orig):
        ae_report["mse_original_before"] = round(_recon_mse(ae, x_orig), 6)
    if opts.ae_epochs:
        # batch norm frozen (inference mode): trained in batch-statistics mode, the autoencoder reconstructed
        # the new crops worse afterwards than before (docs/autoencoder.md)
        for ly in _all_layers(ae):
            if isinstance(ly, keras.layers.BatchNormalization):
                ly.trainable = False
        ae.compile(optimizer=keras.optimizers.Adam(opts.ae_lr), loss="mse")
        ae.fit(x_mix, x_mix, batch_size=opts.batch_size, epochs=opts.ae_epochs, shuffle=True, verbose=0)
    ae_report["mse_new_after"] = round(_recon_mse(ae, x_new), 6)
    if len(x_orig):
        ae_report["mse_original_after"] = round(_recon_mse(ae, x_orig), 6)
    return ae_report


def _write_models(dest: RunDir, src: RunDir, cfg: dict, out: Path, model: Any, ae: Any) -> None:
    """config.json (its dataset made absolute, so that convert finds the faces from ``out``), the
    original run's reports, the adapted classifier and the autoencoder with its parts."""
    new_cfg = dict(cfg)
    data_path = _resolve_data(cfg.get("data"), src.root)
    if data_path is not None:
        new_cfg["data"] = str(data_path)
    new_cfg["out"] = str(out)
    atomic_write_json(dest.config, new_cfg)
    for name in ("metrics", "history", "history_csv", "card"):
        if getattr(src, name).is_file():
            shutil.copy2(getattr(src, name), getattr(dest, name))
    model.save(dest.model)
    ae.save(dest.autoencoder)
    ae.save_weights(dest.ae_weights)
    sub = {ly.name: ly for ly in ae.layers}
    for name, path in (("encoder", dest.encoder), ("decoder", dest.decoder)):
        if name in sub:
            sub[name].save(path)
