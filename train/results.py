"""What a training run measured (``metrics.json``): the classifier evaluated on the validation and
test splits, with the selection, timing and sharpness facts next to it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_fer.bundle import Preprocessing

log = logging.getLogger("edge_fer.train")


@dataclass
class TrainMetrics:
    splits: dict[str, dict]  # split name (PublicTest, PrivateTest / val, test) -> classification report
    selection: dict[str, Any]
    timing: dict[str, Any]
    train_images: int
    pretrain: bool
    sharpness: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """``metrics.json``: one key per evaluated split, then the facts."""
        return {
            **self.splits,
            "selection": self.selection,
            "timing": self.timing,
            "train_images": self.train_images,
            "pretrain": self.pretrain,
            "sharpness": self.sharpness,
        }

    def summary(self) -> dict[str, dict[str, Any]]:
        """Accuracy, macro-F1 and n per split: what the bundle's metadata carries."""
        return {
            k: {"accuracy": round(v["accuracy"], 4), "macro_f1": round(v["macro_f1"], 4), "n": v["n"]}
            for k, v in self.splits.items()
        }

    def final_split(self) -> str | None:
        """The split reported last and never used for a choice (FER2013: PrivateTest)."""
        return next((k for k in ("PrivateTest", "test") if k in self.splits), None)


def evaluate_splits(model: Any, dataset: Any, prep: Preprocessing, multiple: int = 1) -> dict[str, dict]:
    """The classifier on the val and test splits, fed as the runtime feeds it (the bundle's blur and
    scaling), on any backend (numpy in, numpy out). ``multiple``: each batch is padded to a multiple of
    that many faces (JAX data parallel), the padding's outputs dropped."""
    from edge_fer.train.batches import FaceBatches
    from edge_fer.train.metrics import classification_report
    from edge_fer.train.sharpness import gaussian_blur

    out: dict[str, dict] = {}
    for key in ("val", "test"):
        split = dataset.splits.get(key)
        if split is None:
            continue
        faces = gaussian_blur(split.x, prep.blur_sigma)
        batches = FaceBatches(faces, batch_size=512, prep=prep)
        probs = np.concatenate([predict_padded(model, batches[i], multiple) for i in range(len(batches))])
        rep = out[split.name] = classification_report(split.y, probs.argmax(1), dataset.labels)
        log.info("%s: accuracy %.4f, macro-F1 %.4f (n=%d)", split.name, rep["accuracy"], rep["macro_f1"], rep["n"])
    return out


def predict_padded(model: Any, x: np.ndarray, multiple: int = 1) -> np.ndarray:
    """``model`` on one batch (inference mode), padded with copies of its first face to a multiple of
    ``multiple``; the probabilities of ``x`` only."""
    n = len(x)
    pad = -n % multiple
    if pad:
        x = np.concatenate([x, np.repeat(x[:1], pad, axis=0)])
    return np.asarray(model.predict_on_batch(x))[:n]


def best_epoch(rows: list[dict]) -> int | None:
    """The fine-tuning epoch with the best validation accuracy (the one kept)."""
    ft = [r for r in rows if r["stage"] == "finetune" and "val_accuracy" in r]
    return max(ft, key=lambda r: r["val_accuracy"])["epoch"] if ft else None
