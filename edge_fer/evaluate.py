"""``edge-fer eval``: accuracy of a bundle on labeled faces, through the runtime's own code.

Every face goes through :class:`edge_fer.classify.Classifier` (the deployed preprocessing,
quantization and interpreter), never TensorFlow. Two ways to make the crop:

* default: the image is taken as an already cropped face; a non-square image is squared the way
  the runtime squares a box (centred, edges replicated, never stretched) and resized with the
  bundle's interpolation;
* ``detect=True``: the runtime's face detector runs on the image and the classifier sees the crop
  the runtime would cut around the largest face (the detector's framing of its box, widened by the
  bundle's margin). Images
  smaller than ``min_side`` pixels are first upscaled to it and given a replicated border of
  ``pad`` (a fraction of the side), standing in for the context a camera frame has around a face;
  dataset crops as tight as FER2013's 48x48 leave a detector nothing to find otherwise. Images in
  which no face is found are counted (``skipped.no_face``), not classified.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class DetectOptions:
    """How ``detect=True`` finds the face: the detector settings of ``edge-fer run`` (the CLI fills
    them from the run config, :class:`edge_fer.config.DetectorConfig`, with its defaults), plus the
    context given to tight crops (``min_side``, ``pad``)."""

    detector: str = "yunet"  # edge_fer.detect.DEFAULT_DETECTOR
    model: str = ""
    scale: float = 0.5
    min_size: int = 30
    min_side: int = 160
    pad: float = 0.25


@dataclass
class EvalReport:
    model: str
    data: str
    split: str
    detect: bool
    metrics: dict[str, Any]
    skipped: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)  # edge_fer.calibration.summary + reliability

    def to_dict(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "n": m["n"],
            "per_class": m["per_class"],
            "confusion_matrix": m["confusion_matrix"],
            "ece": self.calibration.get("ece"),
            "nll": self.calibration.get("nll"),
            "mean_confidence": self.calibration.get("mean_confidence"),
            "ece_bins": self.calibration.get("bins"),
            "reliability": self.calibration.get("reliability"),
            "labels": m["labels"],
            "skipped": self.skipped,
            "model": self.model,
            "data": self.data,
            "split": self.split,
            "detect": self.detect,
        }

    def render(self) -> str:
        m = self.metrics
        labels = m["labels"]
        lines = [
            f"model {self.model}",
            f"data  {self.data} [{self.split}]{' (crops from the runtime detector)' if self.detect else ''}",
            f"accuracy {m['accuracy'] * 100:.2f}%   macro-F1 {m['macro_f1'] * 100:.2f}%   n={m['n']}",
        ]
        c = self.calibration
        if c:
            lines.append(
                f"calibration: ECE {c['ece']:.4f} ({c['bins']} bins)   NLL {c['nll']:.4f}   "
                f"mean top probability {c['mean_confidence']:.4f}"
            )
        skipped = {k: v for k, v in self.skipped.items() if v}
        if skipped:
            lines.append("skipped: " + ", ".join(f"{k} {v}" for k, v in skipped.items()))
        lines.append("")
        lines.append(f"{'class':<10}{'precision':>10}{'recall':>9}{'f1':>8}{'support':>9}")
        for c in labels:
            pc = m["per_class"][c]
            lines.append(
                f"{c:<10}{pc['precision'] * 100:>9.1f}%{pc['recall'] * 100:>8.1f}%"
                f"{pc['f1'] * 100:>7.1f}%{pc['support']:>9d}"
            )
        lines.append("")
        lines.append("confusion (rows: true, columns: predicted)")
        w = max(7, max(len(c) for c in labels) + 1)
        lines.append(" " * 10 + "".join(f"{c[: w - 1]:>{w}}" for c in labels))
        for c, row in zip(labels, m["confusion_matrix"]):
            lines.append(f"{c:<10}" + "".join(f"{v:>{w}d}" for v in row))
        return "\n".join(lines)


def square_crop(gray: np.ndarray) -> np.ndarray:
    """The whole image as a square crop, as the runtime squares a face box (centred, no stretch)."""
    from edge_fer.preprocess import crop_square

    h, w = gray.shape[:2]
    return gray if h == w else crop_square(gray, (0, 0, w, h), 0.0)


def detector_crop(
    detector, gray: np.ndarray, opts: DetectOptions, margin: float, size: tuple[int, int], resize_method: str = "area"
) -> np.ndarray | None:
    """The crop the runtime would classify for the largest face ``detector`` finds in ``gray`` (a
    tight dataset face given context first, see :func:`_with_context`), resized to ``size`` (w, h);
    None when it finds no face. ``edge-fer train --detector-copies`` trains on these crops."""
    from edge_fer.preprocess import crop_square, resize

    frame = _with_context(gray, opts.min_side, opts.pad)
    found = detector.detect(frame)
    if not found:
        return None
    best = max(found, key=lambda f: f.box[2] * f.box[3])
    return resize(crop_square(frame, detector.crop_box(best.box), margin), size[0], size[1], resize_method)


def _with_context(gray: np.ndarray, min_side: int, pad: float) -> np.ndarray:
    import cv2

    h, w = gray.shape[:2]
    f = min_side / min(h, w)
    if f > 1.0:
        gray = cv2.resize(gray, (int(round(w * f)), int(round(h * f))), interpolation=cv2.INTER_LINEAR)
    if pad > 0:
        b = int(round(pad * max(gray.shape[:2])))
        gray = cv2.copyMakeBorder(gray, b, b, b, b, cv2.BORDER_REPLICATE)
    return gray


def to_model_labels(y: np.ndarray, model_labels: Sequence[str], model: str) -> np.ndarray:
    """The data's labels (indices into the 7 FER labels, as the loaders give them) as indices into the
    model's own label list, matched by name: the bundle's labels say what each output means, whatever
    their order. A label the data has and the model does not is a :class:`DataError`."""
    from edge_fer.errors import DataError
    from edge_fer.labels import LABELS

    index = {name: j for j, name in enumerate(model_labels)}
    missing = sorted({LABELS[int(i)] for i in np.unique(y)} - set(index))
    if missing:
        raise DataError(
            f"{model}: its labels ({', '.join(model_labels)}) do not include {', '.join(missing)}, which the data "
            "has; evaluate it on data with its labels, or map the data's classes with --class-map"
        )
    table = np.array([index.get(name, -1) for name in LABELS])
    return table[y.astype(np.int64)]


def evaluate(
    model: str | Path | None,
    data: str | Path,
    *,
    split: str | None = None,
    detect: bool = False,
    class_map: list[str] | None = None,
    detect_options: DetectOptions | None = None,
    batch: int = 64,
) -> EvalReport:
    from edge_fer.classify import Classifier, default_model_path
    from edge_fer.preprocess import resize
    from edge_fer.train.data import load_labeled_images
    from edge_fer.train.metrics import classification_report

    clf = Classifier.from_file(model, device="cpu", threads=1)
    faces = load_labeled_images(data, split, class_map)
    for line in faces.report.lines():
        log.info("%s", line)
    spec, pre = clf.input_spec, clf.preprocessing
    detector = None
    opts = detect_options or DetectOptions()
    if detect:
        from edge_fer.detect import create_detector

        kw: dict[str, Any] = {"scale": opts.scale, "min_size": opts.min_size}
        if opts.model:
            kw["model"] = opts.model
        detector = create_detector(opts.detector, **kw)
    crops, ys, no_face = [], [], 0
    for img, y in zip(faces.images, faces.y):
        if detector is None:
            crops.append(resize(square_crop(img), spec.width, spec.height, pre.resize))
        else:
            crop = detector_crop(detector, img, opts, pre.margin, (spec.width, spec.height), pre.resize)
            if crop is None:
                no_face += 1
                continue
            crops.append(crop)
        ys.append(int(y))
    from edge_fer.errors import DataError

    if not crops:
        raise DataError(f"{data}: the detector found no face in any of the {len(faces.images)} images")
    probs = np.concatenate(
        [clf.predict_raw(clf.prepare_crops(crops[i : i + batch])) for i in range(0, len(crops), batch)]
    )
    from edge_fer import calibration

    y = to_model_labels(np.asarray(ys), clf.labels, str(model or "the shipped model"))
    metrics = classification_report(y, probs.argmax(1), clf.labels)
    cal = {**calibration.summary(probs, y), "reliability": calibration.reliability(probs, y)}
    r = faces.report
    skipped: dict[str, Any] = {
        "unreadable": r.corrupt,
        "unmapped_class": sum(r.unknown_classes.values()),
        "unmapped_classes": dict(r.unknown_classes),
    }
    if detect:
        skipped["no_face"] = no_face
    return EvalReport(
        model=str(model or default_model_path()),
        data=str(data),
        split=faces.split,
        detect=detect,
        metrics=metrics,
        skipped=skipped,
        calibration=cal,
    )
