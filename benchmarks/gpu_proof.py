"""The one prepared run for a lent GPU (issue 12): throughput and a short training per Keras backend.

    python3 benchmarks/gpu_proof.py --data .gpu/fer2013_compact.npz --out "$OUT" [--backends jax,torch]
    python  benchmarks/gpu_proof.py --data .gpu/fer2013_compact.npz --out /tmp/proof --tiny   # CPU dry run

For each backend that is installed, in its own process (Keras fixes its backend per process) and
under its own time limit, so a stall on one still leaves the other's numbers:
  1. benchmarks/train_throughput.py with the PyDataset input: images/s of the input pipeline, its
     parts, and each training stage, the first steps (compilation, autotuning) timed one by one;
  2. a short training with the real trainer (``edge-fer train --backend``'s): autoencoder, head and
     fine-tuning epochs on the compact training split, validated on its validation split; the run
     directory (train.log and history.jsonl written per epoch) that `edge-fer convert` here turns
     into the int8 bundle.
Every result lands in OUT as JSON (proof.json, throughput_<backend>.json, train_<backend>.json)
plus the run directory train_<backend>/, and is written after each step, so a run cut short still
returns what it finished. Runs from a bare checkout too (edge_fer not installed, as on the GPU machine).
Make the data with benchmarks/compact_data.py; carry keras, namex and optree as wheels.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent


def ensure_package() -> None:
    """edge_fer.train and edge_fer.convert live in train/ and convert/ (pyproject's package-dir): make them
    importable from a checkout that is not pip-installed."""
    for p in (str(REPO), str(HERE)):
        if p not in sys.path:
            sys.path.insert(0, p)
    import edge_fer

    for sub in ("train", "convert"):
        name = f"edge_fer.{sub}"
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        spec = importlib.util.spec_from_file_location(
            name, REPO / sub / "__init__.py", submodule_search_locations=[str(REPO / sub)]
        )
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        setattr(edge_fer, sub, mod)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


# --- child: a short training on one backend ---------------------------------------------------------


def short_training(args) -> int:
    """The real trainer (what ``edge-fer train --backend`` runs) on the compact data written back as a
    FER2013 CSV: run directory ``train_<backend>/`` (model.keras, metadata.json, train.log, ...) for
    ``edge-fer convert`` here, and its timing and metrics in ``train_<backend>.json``."""
    import tempfile

    import numpy as np
    from compact_data import read, write_fer_csv  # benchmarks/, on sys.path
    from edge_fer.train.options import TrainConfig
    from edge_fer.train.trainer import train

    out = Path(args.out)
    report: dict = {"backend": args.backend, "run_dir": f"train_{args.backend}"}
    path = out / f"train_{args.backend}.json"
    write_json(path, report)
    splits = read(args.data)
    (x, y), (vx, vy) = splits["train"], splits.get("val", splits["train"])
    if args.limit:  # a seeded random subset: the splits may be stored class by class
        rng = np.random.default_rng(0)
        t, v = rng.permutation(len(y))[: args.limit], rng.permutation(len(vy))[: max(args.limit // 4, 7)]
        x, y, vx, vy = x[t], y[t], vx[v], vy[v]
    report.update(train_images=len(y), val_images=len(vy))
    with tempfile.TemporaryDirectory() as tmp:  # the CSV stays here: too big to bring back
        t0 = time.perf_counter()
        data = write_fer_csv({"train": (x, y), "val": (vx, vy)}, Path(tmp) / "fer2013.csv")
        report["csv_write_s"] = round(time.perf_counter() - t0, 1)
        write_json(path, report)
        cfg = TrainConfig(
            data=str(data),
            out=str(out / f"train_{args.backend}"),
            backend=args.backend,
            ae_epochs=args.epochs,
            head_epochs=1,
            epochs=args.epochs,
            patience=args.epochs,
            batch_size=args.batch_size,
            width=args.width,
            latent_channels=args.latent_channels,
        )
        t0 = time.perf_counter()
        metrics = train(cfg, overwrite=True)
    report.update(
        seconds=round(time.perf_counter() - t0, 1),
        timing=metrics.timing,
        val_accuracy=metrics.summary().get("PublicTest", {}).get("accuracy"),
        metrics=metrics.summary(),
        provenance={
            k: v
            for k, v in json.loads((out / report["run_dir"] / "metadata.json").read_text())["provenance"].items()
            if k in ("backend", "backend_version", "keras", "devices", "params")
        },
        model=f"{report['run_dir']}/model.keras",
    )
    write_json(path, report)
    return 0


# --- parent: one child per backend and step ---------------------------------------------------------


def run_child(argv: list[str], timeout: float, log_path: Path) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    t0 = time.perf_counter()
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        try:
            rc = subprocess.run(
                [sys.executable, __file__, *argv], stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return {"rc": rc, "seconds": round(time.perf_counter() - t0, 1)}


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    try:
        info["gpus"] = (
            subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
        )
    except (OSError, subprocess.SubprocessError):
        info["gpus"] = []
    from importlib import metadata

    for pkg in ("keras", "jax", "jaxlib", "torch", "tensorflow", "numpy", "opencv-python-headless"):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="compact .npz (benchmarks/compact_data.py)")
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu_proof_out"))
    ap.add_argument("--backends", default="jax,torch", help="in this order; those not installed are skipped")
    ap.add_argument("--tiny", action="store_true", help="CPU dry run: few steps, 512 faces, width 4")
    ap.add_argument("--steps", type=int, default=20, help="throughput: steps per timed window")
    ap.add_argument("--epochs", type=int, default=2, help="short training: autoencoder and fine-tuning epochs")
    ap.add_argument(
        "--budget",
        type=float,
        default=520,
        help="seconds for everything; each step may use its share of what is left (a stalled one "
        "is stopped, the next still runs)",
    )
    ap.add_argument("--child", choices=("train",), help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=4, help="PyDataset worker threads")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--latent-channels", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0, help="training faces (0: all)")
    ap.add_argument("--first-steps", type=int, default=5)
    if sys.argv[1:3] == ["--child", "throughput"]:  # the benchmark's own arguments follow
        import runpy

        ensure_package()
        sys.argv = [str(HERE / "train_throughput.py"), *sys.argv[3:]]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return 0
    args = ap.parse_args()
    ensure_package()
    if args.child == "train":
        return short_training(args)

    if args.tiny:
        args.steps, args.epochs, args.limit, args.width, args.latent_channels = 2, 1, 512, 4, 8
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from edge_fer.train.backend import installed

    proof: dict = {"machine": machine(), "data": args.data, "tiny": args.tiny, "steps": {}}
    write_json(out / "proof.json", proof)
    log = out / "proof.log"
    common = [
        "--data",
        args.data,
        "--out",
        str(out),
        "--batch-size",
        str(args.batch_size),
        "--width",
        str(args.width),
        "--latent-channels",
        str(args.latent_channels),
    ]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    missing = [b for b in backends if not installed(b)]
    proof["steps"].update({b: "not installed" for b in missing})
    backends = [b for b in backends if b not in missing]
    deadline, left = time.monotonic() + args.budget, 2 * len(backends)

    def share() -> float:
        nonlocal left
        left -= 1
        return max(10.0, (deadline - time.monotonic()) / (left + 1))

    for backend in backends:
        tp = [
            "--child",
            "throughput",
            "--backend",
            backend,
            "--input",
            "pyd",
            "--data",
            args.data,
            "--steps",
            str(args.steps),
            "--repeats",
            "2" if args.tiny else "3",
            "--first-steps",
            str(args.first_steps),
            "--workers",
            str(args.workers),
            "--batch-size",
            str(args.batch_size),
            "--width",
            str(args.width),
            "--latent-channels",
            str(args.latent_channels),
            "--json",
            str(out / f"throughput_{backend}.json"),
        ]
        proof["steps"][f"{backend}_throughput"] = run_child(tp, share(), log)
        write_json(out / "proof.json", proof)
        tr = [
            "--child",
            "train",
            "--backend",
            backend,
            *common,
            "--epochs",
            str(args.epochs),
            "--limit",
            str(args.limit),
        ]
        proof["steps"][f"{backend}_train"] = run_child(tr, share(), log)
        write_json(out / "proof.json", proof)
    print(json.dumps(proof, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
