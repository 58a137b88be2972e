"""Knowledge distillation from finished runs (``edge-fer train --teacher RUN_DIR``, repeatable).

Offline ("soft-target") distillation: each teacher's classifier is run once, in inference mode, on the
clean training faces and on their mirror images, scaled as the teacher was trained; the
probabilities are averaged over mirrors and teachers, softened with ``--distill-temperature`` and mixed
with the one-hot labels::

    target = (1 - w) * one_hot(label) + w * softmax(log(p_teacher) / T)          w = --distill-weight

The student is trained on these targets with the usual cross-entropy (label smoothing on top), so its
cost per step is the same as without a teacher: the teachers are not run during training. The targets
of an augmented face are those of the clean face (flips, small affine jitter and erasing keep the
expression). The teachers must have been trained on the same training split: only the training faces
are ever given to them, so PublicTest and PrivateTest stay unseen.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edge_fer.train.rundir import RunDir

from edge_fer.bundle import Preprocessing
from edge_fer.errors import DataError

log = logging.getLogger("edge_fer.train")


@dataclass
class Teacher:
    path: Path
    model: Any
    prep: Preprocessing
    labels: list[str]


def load_teacher(path: str | Path) -> Teacher:
    """A finished run directory (its ``model.keras`` and ``metadata.json``); a one-line error otherwise."""
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


def teacher_probs(teacher: Teacher, faces: np.ndarray, field: bool = False, batch_size: int = 512) -> np.ndarray:
    """The teacher's class probabilities for uint8 (N, H, W) faces, averaged with their mirrors.
    Training faces go in as the teacher was trained on them; ``field`` faces (validation) first get
    the teacher's bundle blur, as its runtime would apply it."""
    from edge_fer.train.batches import FaceBatches
    from edge_fer.train.results import predict_padded
    from edge_fer.train.sharpness import gaussian_blur

    faces = faces[..., 0] if faces.ndim == 4 else faces
    if field:
        faces = gaussian_blur(faces, teacher.prep.blur_sigma)
    out = np.zeros((len(faces), len(teacher.labels)), np.float64)
    for mirrored in (faces, faces[:, :, ::-1]):
        batches = FaceBatches(np.ascontiguousarray(mirrored), batch_size=batch_size, prep=teacher.prep)
        out += np.concatenate([predict_padded(teacher.model, batches[i]) for i in range(len(batches))])
    return out / 2.0


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)``: T > 1 flattens the distribution, T = 1 keeps it."""
    logp = np.log(np.clip(probs, 1e-8, 1.0)) / float(temperature)
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def distillation_targets(
    teachers: list[str],
    x: np.ndarray,
    y: np.ndarray,
    labels: list[str],
    weight: float,
    temperature: float,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, dict]:
    """(N, K) float32 soft targets for training faces ``x`` with labels ``y``, and a summary for the
    run's state (teachers, their accuracy on the training faces and, when ``val`` is given as the raw
    validation faces and labels, on the validation split: the teacher ensemble's selection-split score)."""
    ensemble = np.zeros((len(x), len(labels)), np.float64)
    val_ensemble = None if val is None else np.zeros((len(val[0]), len(labels)), np.float64)
    summary: dict[str, Any] = {"teachers": [], "weight": weight, "temperature": temperature}
    for path in teachers:
        t = load_teacher(path)
        if t.labels != list(labels):
            raise DataError(f"--teacher {path}: its labels {t.labels} differ from this dataset's {list(labels)}")
        p = teacher_probs(t, x)
        ensemble += p
        row = {"run": str(t.path), "train_accuracy": round(float((p.argmax(1) == y).mean()), 4)}
        if val is not None and val_ensemble is not None:
            pv = teacher_probs(t, val[0], field=True)
            val_ensemble += pv
            row["val_accuracy"] = round(float((pv.argmax(1) == val[1]).mean()), 4)
        summary["teachers"].append(row)
        log.info("teacher %s: %s", t.path, ", ".join(f"{k} {v}" for k, v in row.items() if k != "run"))
    ensemble /= len(teachers)
    summary["train_accuracy"] = round(float((ensemble.argmax(1) == y).mean()), 4)
    if val is not None and val_ensemble is not None:
        summary["val_accuracy"] = round(float((val_ensemble.argmax(1) == val[1]).mean()), 4)
    log.info(
        "teacher ensemble of %d: train accuracy %s, val accuracy %s; targets = %.2f x labels + %.2f x teachers at T=%g",
        len(teachers),
        summary["train_accuracy"],
        summary.get("val_accuracy", "-"),
        1 - weight,
        weight,
        temperature,
    )
    onehot = np.eye(len(labels), dtype=np.float64)[y]
    targets = (1.0 - weight) * onehot + weight * soften(ensemble, temperature)
    return targets.astype(np.float32), summary
