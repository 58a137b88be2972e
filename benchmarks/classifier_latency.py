"""Median per-face classification latency at batch 1, 1 thread, of edge-fer bundles (through the
runtime's Classifier: quantize, invoke — twice with flip averaging — dequantize) next to the `fer`
package's own int8 model (raw LiteRT invoke of a 64x64 input), interleaved in one process so the
machine's background load hits all alike.

    python benchmarks/classifier_latency.py --model edge_fer/models/default_int8.tflite \\
        --fer-model /path/to/site-packages/fer/data/emotion_model_quantized.tflite --runs 2000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from edge_fer.stats import summarize_ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", default=[], help="edge-fer bundle (repeatable)")
    ap.add_argument("--fer-model", default=None, help="the fer package's emotion_model_quantized.tflite")
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from ai_edge_litert.interpreter import Interpreter

    from edge_fer.classify import Classifier

    rng = np.random.default_rng(0)
    crop = [rng.integers(0, 255, (48, 48), dtype=np.uint8)]
    timers = {}
    for path in a.model:
        clf = Classifier.from_file(path, device="cpu", threads=1)
        x = clf.prepare_crops(crop)
        timers[path] = lambda clf=clf, x=x: clf.predict_raw(x)
    if a.fer_model:
        it = Interpreter(model_path=a.fer_model, num_threads=1)
        it.allocate_tensors()
        din, dout = it.get_input_details()[0], it.get_output_details()[0]
        xf = np.zeros(din["shape"], din["dtype"])

        def fer_once(it=it, din=din, dout=dout, xf=xf):
            it.set_tensor(din["index"], xf)
            it.invoke()
            return it.get_tensor(dout["index"])

        timers["fer: " + a.fer_model.rsplit("/", 1)[-1]] = fer_once
    times = {k: [] for k in timers}
    for f in timers.values():
        for _ in range(50):
            f()
    for _ in range(a.runs):
        for k, f in timers.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    # the one percentile helper of the runtime and edge-fer bench (edge_fer.stats)
    out = {}
    for k, v in times.items():
        s = summarize_ms(v)
        out[k] = {key: s[key] for key in ("n", "p50_ms", "p90_ms")}
    for k, v in out.items():
        print(f"{v['p50_ms']:.4f} ms median, {v['p90_ms']:.4f} ms p90  {k}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
