"""Median per-face classification latency at batch 1, 1 thread, of edge-fer bundles (through the
runtime's Classifier: quantize, invoke — twice with flip averaging — dequantize) next to the `fer`
package's own int8 model (raw LiteRT invoke of a 64x64 input), interleaved in one process so the
machine's background load hits all alike. The JSON records the machine (CPU model and its int8
instruction-set flags: an AVX-512-VNNI or ARM-dot-product CPU runs the same bundle several times
faster than one with AVX2 only, and not by the same factor for every model) and the ratio of each
bundle's median to `fer`'s.

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
    fer_key = next((k for k in out if k.startswith("fer: ")), None)
    for k, v in out.items():
        ratio = f"  ({v['p50_ms'] / out[fer_key]['p50_ms']:.2f}x fer's time)" if fer_key and k != fer_key else ""
        print(f"{v['p50_ms']:.4f} ms median, {v['p90_ms']:.4f} ms p90  {k}{ratio}")
    if a.json:
        from edge_fer.bench.machine import machine_info

        doc = {
            "models": out,
            "ratio_to_fer": {k: round(v["p50_ms"] / out[fer_key]["p50_ms"], 3) for k, v in out.items() if fer_key}
            if fer_key
            else {},
            "runs": a.runs,
            "threads": 1,
            "machine": machine_info(),
        }
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
