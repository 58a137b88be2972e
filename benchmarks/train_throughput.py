"""Training throughput on this machine: images/s for each training stage (not a test).

    python benchmarks/train_throughput.py --data ../shared/data/fer2013.zip [--width 16] [--steps 30]
        [--backend tensorflow|jax|torch] [--input pyd|tfdata] [--input-only]

Times the real input pipeline and the real models of `edge-fer train` for each stage: autoencoder
(stage 1), head with the encoder frozen (stage 2), end-to-end fine-tuning (stage 3), plus the input
pipeline alone (with its CPU cost per image). ``--input pyd`` (default) is the backend-neutral
numpy/OpenCV ``keras.utils.PyDataset`` (any backend), also timed per part of a batch (gather,
warp + photometric, erase) on one thread; ``--input tfdata`` the tf.data pipeline (TensorFlow only).
Each stage runs ``model.fit`` as the trainer does; its first steps (tracing, compilation, autotuning)
are timed on their own, then the median of repeated timed windows. ``--data`` also takes the
compact .npz of benchmarks/compact_data.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_train(path: str):
    """The training split's uint8 faces and labels, from a dataset or a compact .npz."""
    if path.endswith(".npz"):
        from compact_data import read

        return read(path)["train"]
    from edge_fer.train.data import load_dataset

    tr = load_dataset(path).splits["train"]
    return tr.x, tr.y


def input_factory(kind: str, workers: int, multiprocessing: bool):
    """make_dataset(x, y, **kw) -> an iterable of batches that repeats forever, and the same for model.fit."""
    if kind == "tfdata":
        from tf_input_pipeline import make_dataset as tf_make  # benchmarks/, beside this script

        return lambda *a, **kw: tf_make(*a, **kw).repeat()
    from edge_fer.train.batches import make_dataset as pyd_make

    return lambda *a, **kw: pyd_make(*a, workers=workers, use_multiprocessing=multiprocessing, **kw)


def batch_iterator(ds):
    """Batches of ``ds`` one after another, through the same workers/prefetch that model.fit uses."""
    if hasattr(ds, "repeat"):  # tf.data
        yield from ds
        return
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    while True:
        adapter = PyDatasetAdapter(ds)
        adapter.on_epoch_begin()
        yield from adapter.get_numpy_iterator()
        adapter.on_epoch_end()


def time_input(ds, steps: int, repeats: int, bs: int, n: int) -> tuple[float, float]:
    """images/s of the input pipeline alone, and its CPU cost in microseconds per image (all threads of
    this process: steadier than images/s on a machine shared with other work). The warm-up is one
    whole epoch, so tf.data's cache is filled as it is from the second epoch of a training on."""
    it = batch_iterator(ds)
    for _ in range(-(-n // bs)):
        next(it)
    rates, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            next(it)
        rates.append(steps * bs / (time.perf_counter() - t0))
        cpu.append((time.process_time() - c0) / (steps * bs) * 1e6)
    return statistics.median(rates), statistics.median(cpu)


def pyd_parts(x, bs: int, steps: int) -> dict:
    """images/s of each part of a PyDataset batch, on one thread (no workers)."""
    import numpy as np
    from edge_fer.train.batches import FaceBatches, augment, erase

    rng = np.random.default_rng(0)
    idx = np.sort(rng.permutation(len(x))[:bs])
    faces = x[idx].astype(np.float32) / 255.0
    fb = FaceBatches(x, np.zeros(len(x), np.int64), batch_size=bs, training=True, erase=0.5)
    parts = {
        "gather": lambda: x[idx].astype(np.float32) / 255.0,
        "warp_photometric": lambda: augment(faces, rng),
        "erase": lambda: erase(faces.copy(), rng, 0.5),
        "whole_batch": lambda: fb[int(rng.integers(len(fb)))],
    }
    out = {}
    for name, fn in parts.items():
        fn()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        out[name] = steps * bs / (time.perf_counter() - t0)
    return out


class StepClock:
    """The time at the end of every training step, as a Keras callback (any backend)."""

    def __init__(self, keras):
        clock = self

        class _CB(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                clock.ends.append(time.perf_counter())

        self.callback, self.ends = _CB(), []


def time_fit(keras, model, ds, args, bs: int) -> dict:
    """model.fit over warm-up + timed steps: the first steps' seconds each, then the median images/s."""
    clock = StepClock(keras)
    n = args.first_steps + args.steps * args.repeats
    if not hasattr(ds, "repeat") and len(ds) < n:  # a PyDataset is one epoch long (tf.data repeats)
        raise SystemExit(f"{len(ds)} batches of {bs} faces: fewer than the {n} steps to time (--steps, --repeats)")
    t0 = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=n, verbose=0, callbacks=[clock.callback], shuffle=False)
    ends = [t0, *clock.ends]
    first = [round(ends[i + 1] - ends[i], 3) for i in range(args.first_steps)]
    rates = []
    for r in range(args.repeats):
        a = args.first_steps + r * args.steps
        rates.append(args.steps * bs / (ends[a + args.steps] - ends[a]))
    return {"first_steps_s": first, "images_per_s": statistics.median(rates)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--latent-channels", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20, help="steps per timed window")
    ap.add_argument("--repeats", type=int, default=3, help="timed windows per stage")
    ap.add_argument("--first-steps", type=int, default=3, help="steps timed one by one before the windows")
    ap.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        help="Keras backend (default: KERAS_BACKEND, else tensorflow, jax, torch as installed)",
    )
    ap.add_argument(
        "--input",
        choices=("pyd", "tfdata"),
        default="pyd",
        help="input pipeline: pyd (default, any backend; 2-3x less CPU per image than tf.data here) "
        "or tfdata (tensorflow only)",
    )
    ap.add_argument("--workers", type=int, default=2, help="PyDataset worker threads (or processes)")
    ap.add_argument("--multiprocessing", action="store_true", help="PyDataset workers are processes")
    ap.add_argument("--input-only", action="store_true", help="time the input pipeline only")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    from edge_fer.train.backend import activate, describe_device, resolve_backend

    backend = resolve_backend(args.backend)
    activate(backend)
    kind = args.input
    if kind == "tfdata" and backend != "tensorflow":
        ap.error("--input tfdata needs --backend tensorflow")
    import keras
    from edge_fer.train.model import NetConfig, build_autoencoder, build_classifier, build_decoder, build_encoder

    x, y = load_train(args.data)
    bs, n = args.batch_size, len(x)
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        **describe_device(),
    }
    print(
        f"training throughput, width {args.width}, batch {bs}, {machine['cores']} cores, backend {backend} "
        f"{machine['backend_version']} ({', '.join(machine['devices'])}), keras {machine['keras']}, input {kind}"
    )
    make = input_factory(kind, args.workers, args.multiprocessing)
    rate, cpu_us = time_input(make(x, y, batch_size=bs, training=True), args.steps, args.repeats, bs, n)
    results: dict = {"input_pipeline": rate}
    parts = pyd_parts(x, bs, args.steps) if kind == "pyd" else None
    first: dict = {}

    def save() -> None:  # after every stage: a run stopped at its time limit keeps what it measured
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {
                        "images_per_s": results,
                        "first_steps_s": first,
                        "input_parts_images_per_s": parts,
                        "input_cpu_us_per_image": cpu_us,
                        "input": kind,
                        "backend": backend,
                        "train_images": n,
                        "width": args.width,
                        "batch_size": bs,
                        "machine": machine,
                    },
                    f,
                    indent=2,
                )

    print(f"input pipeline CPU: {cpu_us:.0f} us per image (all threads)")
    for k, v in (parts or {}).items():
        print(f"  pyd {k:<14}{v:>10.0f}   (one thread)")
    print(f"{'stage':<18}{'images/s':>10}{f's/epoch ({n:,})':>20}   first steps (s)")
    print(f"{'input_pipeline':<18}{rate:>10.0f}{n / rate:>20.1f}", flush=True)
    save()
    if not args.input_only:
        cfg = NetConfig(width=args.width, latent_channels=args.latent_channels)
        enc, dec = build_encoder(cfg), build_decoder(cfg)
        ae, cls = build_autoencoder(enc, dec), build_classifier(enc, cfg)
        ae.compile(keras.optimizers.Adam(1e-3), "mse")
        stages = [("ae", ae, make(x, batch_size=bs, training=True, autoencoder=True), None)]
        train = make(x, y, batch_size=bs, training=True)
        stages += [("head", cls, train, (False, 1e-3)), ("finetune", cls, train, (True, 3e-4))]
        for name, model, ds, head in stages:
            if head is not None:
                enc.trainable = head[0]
                cls.compile(keras.optimizers.Adam(head[1]), "sparse_categorical_crossentropy")
            r = time_fit(keras, model, ds, args, bs)
            results[name], first[name] = r["images_per_s"], r["first_steps_s"]
            print(
                f"{name:<18}{results[name]:>10.0f}{n / results[name]:>20.1f}   {' '.join(map(str, first[name]))}",
                flush=True,
            )
            save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
