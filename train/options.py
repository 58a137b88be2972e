"""The options of ``edge-fer train``: one schema (default, range/choices, flag, help per field).

``TrainConfig`` is what ``config.json`` in a run directory holds; the CLI flags of ``edge-fer train``
are derived from it (:func:`edge_fer.schema.command`) and :meth:`TrainConfig.validate` checks it once
(ranges and choices from the schema, then the checks that span several fields).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from edge_fer.train.backend import BACKENDS

from edge_fer.errors import EdgeFerError
from edge_fer.schema import check, opt

ARCHS = ("v1", "res", "res2")  # the encoders edge_fer.train.model builds
OPTIMIZERS = ("adam", "sgd")
TEACHER_VIEWS = ("flip", "multi")  # the views edge_fer.train.distill averages a teacher over


@dataclass
class TrainConfig:
    data: str = opt(required=True, flag="--data", help="FER2013 .csv, a .zip, or a folder of <class>/ images.")
    out: str = opt(
        required=True,
        flag="--output",
        short="-o",
        aliases=("--out",),
        help="Run directory to write (model, metrics.json, plots).",
    )
    ae_epochs: int = opt(20, lo=0, flag="--ae-epochs", help="Autoencoder pretraining epochs (stage 1).")
    epochs: int = opt(40, lo=0, flag="--epochs", help="End-to-end fine-tuning epochs (stage 3), early-stopped.")
    head_epochs: int = opt(3, lo=0, flag="--head-epochs", help="Epochs with the encoder frozen (stage 2).")
    batch_size: int = opt(128, lo=1, flag="--batch-size", help="Training batch size.")
    ae_lr: float = opt(1e-3, lo=0.0, open_lo=True, flag="--ae-lr", help="Learning rate of autoencoder pretraining.")
    lr: float = opt(
        1e-3,
        lo=0.0,
        open_lo=True,
        flag="--lr",
        help="Learning rate of the head stage (and of --no-pretrain with --optimizer adam).",
    )
    finetune_lr: float = opt(
        3e-4,
        lo=0.0,
        open_lo=True,
        flag="--finetune-lr",
        help="Learning rate of end-to-end fine-tuning (with --optimizer sgd: the peak rate, also for --no-pretrain).",
    )
    patience: int = opt(8, lo=0, flag="--patience", help="Early-stopping patience on validation accuracy.")
    seed: int = opt(0, lo=0, flag="--seed", help="Random seed (splits, initialisation, augmentation).")
    width: int = opt(16, lo=1, flag="--width", help="Channel width multiplier of the network.")
    latent_channels: int = opt(32, lo=1, flag="--latent-channels", help="Bottleneck channels (6x6xL code).")
    arch: str = opt(
        "v1",
        choices=ARCHS,
        flag="--arch",
        help="Encoder: v1 (plain conv stack), res (residual blocks at 12x12 and 6x6) or res2 (res with a "
        "second residual block at 6x6).",
    )
    optimizer: str = opt(
        "adam",
        choices=OPTIMIZERS,
        flag="--optimizer",
        help="Fine-tuning optimizer: adam (+ reduce on plateau) or sgd (Nesterov, warm-up + cosine).",
    )
    label_smoothing: float = opt(
        0.0, lo=0.0, hi=1.0, open_hi=True, flag="--label-smoothing", help="Label smoothing of the classification loss."
    )
    warmup_epochs: int = opt(3, lo=0, flag="--warmup-epochs", help="Linear warm-up epochs of --optimizer sgd.")
    erase: float = opt(
        0.0,
        lo=0.0,
        hi=1.0,
        flag="--erase",
        help="Random-erasing probability per training face (occlusion augmentation).",
    )
    dropout: float = opt(0.4, lo=0.0, hi=1.0, open_hi=True, flag="--dropout", help="Dropout rate of the head.")
    weight_decay: float = opt(1e-4, lo=0.0, flag="--weight-decay", help="L2 penalty on convolution kernels.")
    val_fraction: float = opt(
        0.1,
        lo=0.0,
        hi=1.0,
        open_lo=True,
        open_hi=True,
        flag="--val-fraction",
        help="Held-out share when the data has no validation split.",
    )
    class_map: list[str] = opt(
        default_factory=list, flag="--class-map", help="FOLDER=LABEL mapping of your class folders (repeatable)."
    )
    unlabeled: str | None = opt(None, flag="--unlabeled", help="Folder of extra unlabeled face crops for stage 1.")
    init_ae: str | None = opt(
        None,
        flag="--init-ae",
        help="Take stage 1 (the autoencoder) from another run dir instead of training it "
        "(same --arch/--width/--latent-channels).",
    )
    init_model: str | None = opt(
        None,
        flag="--init-model",
        help="Start from another finished run's classifier (its model.keras, and its stage 1 for the "
        "decoder): stages 1-2 are taken, not trained, and fine-tuning continues from its weights "
        "(same --arch/--width/--latent-channels).",
    )
    pretrain: bool = opt(
        True,
        flag="--pretrain/--no-pretrain",
        help="Autoencoder pretraining; --no-pretrain is the ablation: the same classifier trained from scratch.",
    )
    class_weight_power: float = opt(
        0.5, lo=0.0, flag="--class-weight-power", help="Class weights (1/frequency)^p; 0 disables."
    )
    limit: int = opt(0, lo=0, flag="--limit", help="Use at most N training faces (stratified), for smoke runs.")
    margin: float = opt(
        0.1, lo=0.0, hi=2.0, open_hi=True, flag="--margin", help="Crop margin the runtime adds around detected faces."
    )
    # None: measured (edge_fer.train.sharpness); the flag takes 'auto' or a number (parse_blur_sigma)
    blur_sigma: float | None = opt(
        None,
        lo=0.0,
        hi=10.0,
        open_hi=True,
        flag="--blur-sigma",
        cli_type=str,
        help="Blur applied to non-training inputs: 'auto' (match the training faces' "
        "sharpness) or a sigma; 0 disables. (default: auto)",
    )
    teacher: list[str] = opt(
        default_factory=list,
        flag="--teacher",
        help="Distil from this finished run dir or .tflite bundle ('default': the shipped model; repeatable: "
        "an ensemble); its soft targets on the training faces are mixed with the labels.",
    )
    teacher_views: str = opt(
        "flip",
        choices=TEACHER_VIEWS,
        flag="--teacher-views",
        help="Views a teacher averages over: flip (each face and its mirror) or multi (also 2-pixel shifts "
        "and 8 percent zooms: 14 views).",
    )
    teacher_augments: int = opt(
        0,
        lo=0,
        hi=32,
        flag="--teacher-augments",
        help="Consistent teaching: the teachers label K jittered copies of each training face (mirror, "
        "rotation, shift, zoom) and each epoch trains on one copy of each with its own target; 0: "
        "targets of the clean faces.",
    )
    detector_copies: int = opt(
        0,
        lo=0,
        hi=32,
        flag="--detector-copies",
        help="Train for the runtime's crops: N of the --teacher-augments copies are recut the way "
        "'edge-fer run' cuts a face, around the shipped YuNet detector's box (the face given context "
        "as 'edge-fer eval --detect' does); the teachers label each copy as it was before the recut; "
        "0: none.",
    )
    distill_weight: float = opt(
        0.5, lo=0.0, hi=1.0, flag="--distill-weight", help="Share of the teachers' soft targets in the training target."
    )
    distill_temperature: float = opt(
        2.0,
        lo=0.0,
        open_lo=True,
        hi=20.0,
        flag="--distill-temperature",
        help="Softening of the teachers' probabilities.",
    )

    backend: str | None = opt(
        None,
        choices=BACKENDS,
        flag="--backend",
        help="Keras 3 backend that trains: tensorflow, jax or torch. (default: KERAS_BACKEND if set, "
        "else tensorflow when installed, else jax, else torch)",
    )

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A run's ``config.json`` (keys this version does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_flags(cls, flags: dict[str, Any]) -> TrainConfig:
        """The flags given on the command line (not validated yet: :meth:`validate`)."""
        values = dict(flags)
        if "blur_sigma" in values:
            values["blur_sigma"] = parse_blur_sigma(values["blur_sigma"])
        for key in ("data", "out", "unlabeled", "init_ae", "init_model"):  # paths as the CLI always wrote them
            if values.get(key) is not None:
                values[key] = str(Path(values[key]))
        if values.get("teacher"):
            values["teacher"] = [t if t == "default" else str(Path(t)) for t in values["teacher"]]
        return cls(**values)

    def validate(self) -> TrainConfig:
        """Ranges and choices (the schema), then what spans several options."""
        check(self, as_flags=True)
        if self.epochs + (self.head_epochs if self.pretrain else 0) == 0:
            raise EdgeFerError("nothing to train: --epochs (and --head-epochs) are 0")
        if self.init_model:
            if not (Path(self.init_model) / "model.keras").is_file():
                raise EdgeFerError(f"--init-model {self.init_model}: not a finished run directory (no model.keras)")
            if self.init_ae and Path(self.init_ae) != Path(self.init_model):
                raise EdgeFerError("--init-model takes stage 1 from the same run: leave out --init-ae")
            if not self.pretrain:
                raise EdgeFerError("--init-model continues a pretrained run: it does not go with --no-pretrain")
        if self.teacher_augments and not self.teacher:
            raise EdgeFerError("--teacher-augments needs a --teacher to label the copies")
        if self.detector_copies > self.teacher_augments:
            raise EdgeFerError(
                f"--detector-copies {self.detector_copies} needs at least as many --teacher-augments copies to recut "
                f"(got {self.teacher_augments})"
            )
        from edge_fer.train.distill import teacher_path_problem

        for t in self.teacher:  # checked before hours of stage 1, not after
            problem = teacher_path_problem(t)
            if problem:
                raise EdgeFerError(problem)
        return self

    @property
    def finetune_epochs(self) -> int:
        """Stage 3's epochs: ``--no-pretrain`` trains from scratch for the head's epochs too."""
        return self.epochs if self.pretrain else self.epochs + self.head_epochs


def parse_blur_sigma(text: str | float | None) -> float | None:
    """``--blur-sigma``: 'auto' (None: measured) or a number."""
    if text is None or isinstance(text, (int, float)):
        return text
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise EdgeFerError(f"--blur-sigma must be 'auto' or a number, not {text!r}") from None
