"""The options of ``edge-fer adapt``: one schema (default, range, flag, help per field) for the CLI
flags, the report's ``options`` and validation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_fer.errors import EdgeFerError
from edge_fer.schema import check, opt


@dataclass
class AdaptOptions:
    run_dir: Path  # the positional argument: the trained run directory
    unlabeled: Path = opt(
        required=True, flag="--unlabeled", help="Folder of face crops from the new camera (at least 100)."
    )
    out: Path = opt(
        required=True, flag="--output", short="-o", aliases=("--out",), help="The adapted run directory to write."
    )
    # chosen on PublicTest (docs/autoencoder.md)
    mix: float = opt(
        2.0,
        lo=0.0,
        flag="--mix",
        help="Original training faces per new crop, mixed in for the batch-norm statistics (0: the new crops alone).",
    )
    bn: bool = opt(True, flag="--bn/--no-bn", help="Re-estimate the classifier's batch-norm statistics.")
    ae_epochs: int = opt(
        0,
        lo=0,
        flag="--ae-epochs",
        help="Epochs of autoencoder reconstruction training on the mix "
        "(default 0: measured to make the quality gate worse).",
    )
    ae_lr: float = opt(1e-4, lo=0.0, open_lo=True, flag="--ae-lr", help="Adam learning rate of that training.")
    batch_size: int = opt(128, lo=1)
    seed: int = opt(0, lo=0, flag="--seed", help="Sampling and training seed.")
    data: Path | None = opt(None, flag="--data", help="The original faces (default: the run's dataset, config.json).")
    overwrite: bool = opt(False, flag="--overwrite", help="Replace a non-empty --output folder.")

    def validate(self) -> AdaptOptions:
        """Ranges (the schema), then what spans several options; paths become :class:`Path`."""
        self.run_dir, self.out, self.unlabeled = Path(self.run_dir), Path(self.out), Path(self.unlabeled)
        check(self, as_flags=True)
        if not self.bn and self.ae_epochs == 0:
            raise EdgeFerError("nothing to do: --no-bn and --ae-epochs 0")
        return self
