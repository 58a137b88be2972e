"""Training throughput on this machine: images/s for each training stage (not a test).

    python benchmarks/train_throughput.py --data ../shared/data/fer2013.zip [--width 16] [--steps 30]

Times the real input pipeline (tf.data, cache, batched augmentation, prefetch) and the real models
of `edge-fer train` for each stage: autoencoder (stage 1), head with the encoder frozen (stage 2),
end-to-end fine-tuning (stage 3), plus the input pipeline alone. Reports the median of repeated
timed windows after a warm-up, and the machine it ran on.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--latent-channels", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20, help="steps per timed window")
    ap.add_argument("--repeats", type=int, default=3, help="timed windows per stage")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    import numpy as np
    import tensorflow as tf
    from tensorflow import keras

    from edge_fer.train.data import load_dataset
    from edge_fer.train.model import NetConfig, build_autoencoder, build_classifier, build_decoder, build_encoder
    from edge_fer.train.input_pipeline import make_dataset

    ds = load_dataset(args.data)
    tr = ds.splits["train"]
    cfg = NetConfig(width=args.width, latent_channels=args.latent_channels)
    enc, dec = build_encoder(cfg), build_decoder(cfg)
    ae, cls = build_autoencoder(enc, dec), build_classifier(enc, cfg)
    bs = args.batch_size

    def time_steps(step, it) -> float:
        for _ in range(3):  # warm-up: tracing, caches
            step(next(it))
        rates = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(next(it))
            rates.append(args.steps * bs / (time.perf_counter() - t0))
        return statistics.median(rates)

    results = {}
    it = iter(make_dataset(tr.x, tr.y, batch_size=bs, training=True).repeat())
    results["input_pipeline"] = time_steps(lambda b: None, it)

    ae.compile(keras.optimizers.Adam(1e-3), "mse")
    it = iter(make_dataset(tr.x, batch_size=bs, training=True, autoencoder=True).repeat())
    results["ae"] = time_steps(lambda b: ae.train_on_batch(*b), it)

    it = iter(make_dataset(tr.x, tr.y, batch_size=bs, training=True).repeat())
    enc.trainable = False
    cls.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    results["head"] = time_steps(lambda b: cls.train_on_batch(*b), it)
    enc.trainable = True
    cls.compile(keras.optimizers.Adam(3e-4), "sparse_categorical_crossentropy")
    results["finetune"] = time_steps(lambda b: cls.train_on_batch(*b), it)

    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "python": platform.python_version(), "tensorflow": tf.__version__,
               "gpus": [d.name for d in tf.config.list_logical_devices("GPU")]}
    n = len(tr)
    print(f"training throughput, width {args.width}, batch {bs}, {machine['cores']} cores, "
          f"GPU: {machine['gpus'] or 'none'}, TF {tf.__version__}")
    print(f"{'stage':<16}{'images/s':>10}{'s/epoch (28,709)':>20}")
    for k, v in results.items():
        print(f"{k:<16}{v:>10.0f}{n / v:>20.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"images_per_s": results, "train_images": n, "width": args.width, "batch_size": bs,
                       "machine": machine}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
