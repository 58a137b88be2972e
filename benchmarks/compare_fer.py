"""edge-fer vs the `fer` PyPI package, side by side on the same frames (not a test).

    python benchmarks/compare_fer.py --source ../shared/data/video/hamilton_clip.mp4 --model MODEL.tflite \
        [--detector yunet --detector-model face_detection_yunet.onnx --detect-every 3 --detect-scale 0.5] \
        [--loop N] [--max-frames N] [--warmup 5] [--json out.json]

The same as ``edge-fer bench --source ... --compare fer`` without the pipeline table. Each video frame
is decoded once (not timed), then given to both pipelines in one process, alternating frame by frame
(who goes first alternates too, so neither always gets the warm cache):

* ours: ``Pipeline.from_config(cfg).process(frame)``, the real ``edge-fer run`` pipeline from
  detection to the sink (events discarded to os.devnull);
* fer: ``FER().detect_emotions(frame)``, its default pipeline: OpenCV's Haar cascade on the full frame
  (scaleFactor 1.1, minNeighbors 5, min face 50 px) + its quantized mini_XCEPTION TFLite model
  (64x64 gray), run by ``tf.lite.Interpreter``.

It reports frames/s for both, their ratio (edge-fer / fer), per-frame latency percentiles, and
whether both found the same number of faces (per frame and in total).

`fer` needs TensorFlow and its plain `pip install fer` pulls torch (an 8 GB venv), and it wants
opencv-contrib, which clashes with the headless OpenCV edge-fer uses. So it lives in its own venv,
never in the project's, installed leanly (about 2 GB, a minute or two)::

    python3.11 -m venv /tmp/fer-venv                      # no --system-site-packages
    /tmp/fer-venv/bin/pip install --upgrade pip
    /tmp/fer-venv/bin/pip install --no-deps fer           # 25.10.3 when this was written
    /tmp/fer-venv/bin/pip install tensorflow-cpu "opencv-python-headless<5" "setuptools<81" \
        pandas requests pillow matplotlib tqdm            # fer's runtime deps, minus torch/facenet
    /tmp/fer-venv/bin/pip install -e /path/to/edge-fer   # edge-fer itself (ai-edge-litert, typer, ...)
    /tmp/fer-venv/bin/python benchmarks/compare_fer.py --source ../shared/data/video/hamilton_clip.mp4 --model M.tflite

(``setuptools<81`` because fer imports ``pkg_resources``.) Importing fer imports TensorFlow; edge-fer's
own pipeline still runs on ai-edge-litert in the same process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, help="a video file or images (decoded once, fed to both)")
    ap.add_argument("--model", help="edge-fer model bundle (default: the shipped model)")
    ap.add_argument("--config", help="edge-fer run's TOML config; flags override it")
    ap.add_argument("--detector", help="haar (default) | yunet")
    ap.add_argument("--detector-model", help="YuNet .onnx")
    ap.add_argument("--detect-every", type=int)
    ap.add_argument("--full-every", type=int, help="full-frame detection every N frames, windows between (0: off)")
    ap.add_argument("--detect-scale", type=float)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--device", help="auto | cpu | edgetpu")
    ap.add_argument("--max-frames", type=int, default=0, help="timed frames (0: all)")
    ap.add_argument("--loop", type=int, default=1, help="play the frames N times")
    ap.add_argument("--warmup", type=int, default=5, help="untimed frames first, for both")
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from edge_fer import bench
    from edge_fer import config as cfgmod
    from edge_fer.errors import EdgeFerError

    overrides = {
        "source.uri": args.source, "model.path": args.model, "detector.name": args.detector,
        "detector.model": args.detector_model, "detector.every": args.detect_every, "detector.full_every": args.full_every, "detector.scale": args.detect_scale,
        "model.threads": args.threads, "model.device": args.device, "output.path": os.devnull,
    }
    try:
        cfg = cfgmod.build(args.config, overrides)
        rep = bench.compare_fer(cfg, max_frames=args.max_frames, warmup=args.warmup, loops=args.loop)
        if args.json:
            bench.write_json(rep, args.json)
    except EdgeFerError as e:
        print(f"compare_fer: error: {e}", file=sys.stderr)
        return 2
    print(bench.format_compare(rep))
    if not args.json:
        print(json.dumps({k: rep[k] for k in ("fps_ratio", "same_face_count_fraction", "same_total_faces")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
