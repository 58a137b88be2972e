"""Knowledge distillation (``edge-fer train --teacher RUN_DIR|BUNDLE.tflite``, repeatable).

Offline ("soft-target") distillation: each teacher is run once, in inference mode, on the clean
training faces and on their mirror images (``--teacher-views flip``), or on those and four 2-pixel
shifts and two 8% zooms of each, mirrored too (``--teacher-views multi``: 14 views); the
probabilities are averaged over views and teachers, softened with ``--distill-temperature`` and mixed
with the one-hot labels::

    target = (1 - w) * one_hot(label) + w * softmax(log(p_teacher) / T)          w = --distill-weight

The student is trained on these targets with the usual cross-entropy (label smoothing on top), so its
cost per step is the same as without a teacher: the teachers are not run during training. By default the
targets of an augmented face are those of the clean face (flips, small affine jitter and erasing keep the
expression). With ``--teacher-augments K`` the teaching is *consistent* instead: K copies of each training
face are warped once with the training jitter (:func:`~edge_fer.train.batches.warp_faces`: mirror,
rotation, shift, zoom), the teachers label each copy, and every epoch the student sees one copy of each
face with that copy's own target, so it learns what the teachers say of a face framed off-centre rather
than of the centred face only. The teachers must have been trained on the same training split: only the training faces
are ever given to them, so PublicTest and PrivateTest stay unseen.

A teacher is a finished run directory (its Keras ``model.keras``, scaled as it was trained) or a model
bundle made by ``edge-fer convert`` (a ``.tflite`` file, run through the runtime's own
:class:`~edge_fer.classify.Classifier` and preprocessing, int8 as deployed). A bundle teacher lets a
run learn from the shipped default (``--teacher default``) without the run that made it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edge_fer.train.options import TEACHER_VIEWS
from edge_fer.train.rundir import RunDir

from edge_fer.bundle import Preprocessing
from edge_fer.errors import DataError

log = logging.getLogger("edge_fer.train")


# (dx, dy, zoom) of the views of 'multi', each also mirrored: the centre, 2-pixel shifts, 8% zooms
_MULTI_VIEWS = ((0, 0, 1.0), (2, 0, 1.0), (-2, 0, 1.0), (0, 2, 1.0), (0, -2, 1.0), (0, 0, 0.92), (0, 0, 1.08))


@dataclass
class Teacher:
    path: Path
    model: Any  # a Keras model (run directory) or, with is_bundle, an edge_fer.classify.Classifier
    prep: Preprocessing
    labels: list[str]
    is_bundle: bool = False


def teacher_path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a teacher (None when it can): checked before stage 1, not after."""
    if path == "default":
        return None
    if path.endswith(".tflite"):
        return None if Path(path).is_file() else f"--teacher {path}: no such model file"
    if not all((Path(path) / name).is_file() for name in ("model.keras", "metadata.json")):
        return f"--teacher {path}: not a finished run directory (no model.keras/metadata.json) nor a .tflite bundle"
    return None


def teacher_files(path: str) -> list[Path]:
    """The files a teacher's predictions come from (a bundle, or a run's model and metadata)."""
    if path == "default":
        from edge_fer.classify import default_model_path

        return [default_model_path()]
    if path.endswith(".tflite"):
        return [Path(path)]
    run = RunDir(Path(path))
    return [run.model, run.metadata]


def load_teacher(path: str | Path) -> Teacher:
    """A finished run directory (its ``model.keras`` and ``metadata.json``) or a ``.tflite`` bundle
    (``default``: the shipped one); a one-line error otherwise."""
    text = str(path)
    if text == "default" or text.endswith(".tflite"):
        return _load_bundle_teacher(None if text == "default" else text)
    import keras

    run = RunDir(Path(path))
    if not run.model.is_file() or not run.metadata.is_file():
        raise DataError(f"--teacher {path}: not a finished run directory (no model.keras/metadata.json)")
    meta = json.loads(run.metadata.read_text())
    try:
        model = keras.models.load_model(run.model, compile=False)
    except (ValueError, OSError) as e:
        raise DataError(f"--teacher {path}: cannot load model.keras: {str(e).splitlines()[0][:200]}") from None
    return Teacher(run.root, model, Preprocessing.from_dict(meta.get("preprocessing", {})), list(meta["labels"]))


def _load_bundle_teacher(path: str | None) -> Teacher:
    from edge_fer.classify import Classifier, default_model_path
    from edge_fer.errors import ModelError

    try:  # every core: labelling K copies x 14 views of the training faces is millions of invocations
        clf = Classifier.from_file(path, threads=os.cpu_count() or 1)
    except ModelError as e:
        raise DataError(f"--teacher {path or 'default'}: {e}") from None
    return Teacher(Path(path) if path else default_model_path(), clf, clf.preprocessing, list(clf.labels), True)


def face_views(faces: np.ndarray, views: str) -> list[np.ndarray]:
    """The views of uint8 (N, H, W) faces a teacher averages over: each face and its mirror
    (``flip``), and with ``multi`` also 2-pixel shifts and 8% zooms of both (reflected borders)."""
    if views not in TEACHER_VIEWS:
        raise ValueError(f"unknown teacher views {views!r} (choose from {', '.join(TEACHER_VIEWS)})")
    if views == "flip":
        return [faces, faces[:, :, ::-1]]
    import cv2

    h, w = faces.shape[1:3]
    out = []
    for dx, dy, zoom in _MULTI_VIEWS:
        m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), 0.0, zoom)
        m[:, 2] += (dx, dy)
        view = (
            faces
            if (dx, dy, zoom) == (0, 0, 1.0)
            else np.stack(
                [cv2.warpAffine(f, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101) for f in faces]
            )
        )
        out += [view, view[:, :, ::-1]]
    return out


def teacher_probs(
    teacher: Teacher, faces: np.ndarray, field: bool = False, batch_size: int = 512, views: str = "flip"
) -> np.ndarray:
    """The teacher's class probabilities for uint8 (N, H, W) faces, averaged over their ``views``.
    Training faces go in as the teacher was trained on them; ``field`` faces (validation) first get
    the teacher's bundle blur, as its runtime would apply it. A bundle teacher sees every face as its
    runtime would (the runtime applies the bundle's blur itself)."""
    from edge_fer.train.sharpness import gaussian_blur

    faces = faces[..., 0] if faces.ndim == 4 else faces
    if field and not teacher.is_bundle:
        faces = gaussian_blur(faces, teacher.prep.blur_sigma)
    all_views = face_views(np.ascontiguousarray(faces), views)
    out = np.zeros((len(faces), len(teacher.labels)), np.float64)
    for view in all_views:
        out += _predict(teacher, np.ascontiguousarray(view), batch_size)
    return out / len(all_views)


def _predict(teacher: Teacher, faces: np.ndarray, batch_size: int) -> np.ndarray:
    if teacher.is_bundle:  # the runtime's path: its resize, scaling and quantization, int8 as deployed
        clf = teacher.model
        return np.concatenate(
            [
                clf.predict_raw(clf.prepare_crops(list(faces[i : i + batch_size])))
                for i in range(0, len(faces), batch_size)
            ]
        )
    from edge_fer.train.batches import FaceBatches
    from edge_fer.train.results import predict_padded

    batches = FaceBatches(faces, batch_size=batch_size, prep=teacher.prep)
    return np.concatenate([predict_padded(teacher.model, batches[i]) for i in range(len(batches))])


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)``: T > 1 flattens the distribution, T = 1 keeps it."""
    logp = np.log(np.clip(probs, 1e-8, 1.0)) / float(temperature)
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def augmented_copies(faces: np.ndarray, copies: int, seed: int) -> np.ndarray:
    """(copies * N, H, W) uint8: ``copies`` warps of the (N, H, W) faces with the training jitter,
    copy after copy (row ``k * N + i`` is copy k of face i), seeded, so a resumed run gets the same."""
    from edge_fer.train.batches import warp_faces

    faces = faces[..., 0] if faces.ndim == 4 else faces
    rng = np.random.default_rng([seed, 7919])
    return np.concatenate([warp_faces(np.ascontiguousarray(faces), rng) for _ in range(copies)])


def detector_recut(
    copies: np.ndarray, n_faces: int, n: int, margin: float, detector: Any = None
) -> tuple[np.ndarray, int]:
    """The first ``n`` copies of ``n_faces`` faces (row ``k * n_faces + i``, :func:`augmented_copies`)
    recut around the YuNet detector's box (``detector``, default: the runtime's) as the runtime cuts
    faces (at ``margin``); a copy in which it finds no face stays as it was. Returns the copies and
    how many were recut."""
    from edge_fer.detect import create_detector
    from edge_fer.evaluate import DetectOptions, detector_crop

    out = copies.copy()
    detector, opts = detector or create_detector("yunet"), DetectOptions()
    h, w = copies.shape[1:3]
    recut = 0
    for row in range(min(n, len(copies) // max(n_faces, 1)) * n_faces):
        crop = detector_crop(detector, copies[row], opts, margin, (w, h))
        if crop is not None:
            out[row] = crop
            recut += 1
    return out, recut


def distillation_targets(
    teachers: list[str],
    x: np.ndarray,
    y: np.ndarray,
    labels: list[str],
    weight: float,
    temperature: float,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    views: str = "flip",
) -> tuple[np.ndarray, dict]:
    """(N, K) float32 soft targets for training faces ``x`` with labels ``y``, and a summary for the
    run's state (teachers, their accuracy on the training faces and, when ``val`` is given as the raw
    validation faces and labels, on the validation split: the teacher ensemble's selection-split score).
    ``x`` may be copies of the faces (:func:`augmented_copies`), ``y`` then their labels repeated."""
    ensemble = np.zeros((len(x), len(labels)), np.float64)
    val_ensemble = None if val is None else np.zeros((len(val[0]), len(labels)), np.float64)
    summary: dict[str, Any] = {"teachers": [], "weight": weight, "temperature": temperature, "views": views}
    for path in teachers:
        t = load_teacher(path)
        if t.labels != list(labels):
            raise DataError(f"--teacher {path}: its labels {t.labels} differ from this dataset's {list(labels)}")
        p = teacher_probs(t, x, views=views)
        ensemble += p
        row = {"run": str(t.path), "train_accuracy": round(float((p.argmax(1) == y).mean()), 4)}
        if val is not None and val_ensemble is not None:
            pv = teacher_probs(t, val[0], field=True, views=views)
            val_ensemble += pv
            row["val_accuracy"] = round(float((pv.argmax(1) == val[1]).mean()), 4)
        summary["teachers"].append(row)
        log.info("teacher %s: %s", t.path, ", ".join(f"{k} {v}" for k, v in row.items() if k != "run"))
    ensemble /= len(teachers)
    summary["train_accuracy"] = round(float((ensemble.argmax(1) == y).mean()), 4)
    if val is not None and val_ensemble is not None:
        summary["val_accuracy"] = round(float((val_ensemble.argmax(1) == val[1]).mean()), 4)
    log.info(
        "teacher ensemble of %d (%s views): train accuracy %s, val accuracy %s; "
        "targets = %.2f x labels + %.2f x teachers at T=%g",
        len(teachers),
        views,
        summary["train_accuracy"],
        summary.get("val_accuracy", "-"),
        1 - weight,
        weight,
        temperature,
    )
    onehot = np.eye(len(labels), dtype=np.float64)[y]
    targets = (1.0 - weight) * onehot + weight * soften(ensemble, temperature)
    return targets.astype(np.float32), summary
