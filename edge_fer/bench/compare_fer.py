"""edge-fer vs the `fer` PyPI package, side by side on the same frames (not a test).

    python benchmarks/compare_fer.py --source ../shared/data/video/hamilton_clip.mp4 --model MODEL.tflite \
        [--detector yunet --detector-model face_detection_yunet.onnx --detect-every 3 --detect-scale 0.5] \
        [--repeat N] [--max-frames N] [--warmup 5] [--json out.json]

The same as ``edge-fer bench --source ... --compare fer`` without the pipeline table: this module is the
one implementation, part of the installed package (:mod:`edge_fer.bench.peers`); ``benchmarks/compare_fer.py``
runs its :func:`main`. Each video frame
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
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_fer.bench import SCHEMA, machine_info, write_json
from edge_fer.bench.report import JsonRecord
from edge_fer.bench.text import machine_line, num, table
from edge_fer.doctor import dist_version
from edge_fer.errors import ConfigError, EdgeFerError, MissingExtraError, SourceError
from edge_fer.models import display_path
from edge_fer.redact import redact
from edge_fer.stats import summarize_ms

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FER_INSTALL_HINT = (
    "pip install --no-deps fer && pip install tensorflow-cpu 'opencv-python-headless<5' 'setuptools<81' "
    "pandas requests pillow matplotlib tqdm  (in a separate venv: see edge_fer/bench/compare_fer.py)"
)


class PeerMissingError(MissingExtraError):
    """The ``fer`` package (the side-by-side peer) is not importable."""

    def __init__(self, reason: str):
        EdgeFerError.__init__(
            self, f"--compare fer needs the 'fer' package ({reason}); install it leanly: {FER_INSTALL_HINT}"
        )
        self.extra = "fer"


def require_peer() -> Any:
    """The ``FER`` class; :class:`PeerMissingError` when the ``fer`` package is not importable."""
    try:
        from fer.fer import FER  # noqa: PLC0415 - optional peer, imports TensorFlow
    except ImportError as e:
        raise PeerMissingError(f"{type(e).__name__}: {e}") from None
    return FER


@dataclass(kw_only=True)
class Side(JsonRecord):
    """One pipeline's figures on the shared frames."""

    fps: float
    latency: dict[str, float]  # per frame, decoding excluded
    faces: int
    frames_with_faces: int
    init_ms: float
    config: dict[str, Any] | str = ""


def _side(seconds: list[float], faces: list[int], init_s: float) -> Side:
    return Side(
        fps=round(len(seconds) / sum(seconds), 3),
        latency=summarize_ms(seconds),
        faces=int(sum(faces)),
        frames_with_faces=int(sum(1 for x in faces if x)),
        init_ms=round(init_s * 1000, 1),
    )


@dataclass(kw_only=True)
class CompareReport(JsonRecord):
    """The side-by-side; ``edge-fer bench --compare fer`` puts it under ``compare`` in its report."""

    schema: str = SCHEMA
    mode: str = "compare"
    peer: str = "fer"
    peer_version: str | None
    source: str
    frames: int
    warmup_frames: int
    timed: str = (
        "detection to sink for ours (Pipeline.process), FER.detect_emotions for fer; decoding excluded for both"
    )
    ours: Side
    fer: Side
    fps_ratio: float
    same_face_count_frames: int
    same_face_count_fraction: float
    same_total_faces: bool
    machine: dict[str, Any]


def load_frames(uri: str, max_frames: int = 0, loops: int = 1) -> tuple[list[np.ndarray], str]:
    """Decode a finite source once (with the project's own source classes) into memory."""
    from edge_fer.sources import SourceMode, open_source

    src = open_source(uri)
    if src.mode is SourceMode.LIVE:
        raise ConfigError("--compare needs a finite source (a video file or images), not a live camera")
    imgs: list[np.ndarray] = []
    src.open()
    try:
        while True:
            f = src.read()
            if f is None:
                break
            imgs.append(f.image)
            if max_frames and len(imgs) >= max_frames:
                break
    finally:
        src.close()
    if not imgs:
        raise SourceError(f"{getattr(src, 'name', uri)}: no frames could be read from the source")
    frames = imgs * loops
    if max_frames:
        frames = frames[:max_frames]
    return frames, getattr(src, "name", str(uri))


def compare(cfg: Any, *, max_frames: int = 0, warmup: int = 5, loops: int = 1) -> CompareReport:
    """Ours (the real pipeline from ``cfg``, stages from detection to sink) and the ``fer`` package's
    default pipeline (``FER()``: OpenCV Haar + its TFLite model, ``detect_emotions``) on the same
    decoded frames, alternating frame by frame (who goes first alternates too), one process.

    Decoding is done once up front and is not timed for either. Warm-up frames run both, untimed."""
    from edge_fer.pipeline import Pipeline
    from edge_fer.types import Frame

    FER = require_peer()
    frames, name = load_frames(cfg.source.uri, 0, 1)
    total = len(frames) * loops
    if max_frames:
        total = min(total, max_frames + warmup)
    if total <= warmup:
        raise ConfigError(
            f"{name}: {total} frames, all used as warm-up (--warmup {warmup}); lower --warmup or use --repeat"
        )
    t0 = time.perf_counter()
    fer = FER()
    fer_init = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipe = Pipeline.from_config(cfg)  # its source is built but never opened: frames are fed to process()
    ours_init = time.perf_counter() - t0
    ours_t: list[float] = []
    fer_t: list[float] = []
    ours_n: list[int] = []
    fer_n: list[int] = []
    pc = time.perf_counter
    try:
        for i in range(total):
            img = frames[i % len(frames)]

            def run_ours(img=img, i=i) -> tuple[float, int]:
                before = pipe.faces
                t = pc()
                pipe.process(Frame(img, i, time.time(), None))
                return pc() - t, pipe.faces - before

            def run_fer(img=img) -> tuple[float, int]:
                t = pc()
                res = fer.detect_emotions(img)
                return pc() - t, len(res)

            if i % 2 == 0:
                (ta, na), (tb, nb) = run_ours(), run_fer()
            else:
                (tb, nb), (ta, na) = run_fer(), run_ours()
            if i < warmup:
                continue
            ours_t.append(ta)
            ours_n.append(na)
            fer_t.append(tb)
            fer_n.append(nb)
    finally:
        pipe.close()
    n = len(ours_t)
    ours, peer = _side(ours_t, ours_n, ours_init), _side(fer_t, fer_n, fer_init)
    d = cfg.detector
    ours.config = {
        "detector": d.name,
        "detect_every": d.every,
        "detect_scale": d.scale,
        "full_every": d.full_every,
        "model": display_path(getattr(pipe.classifier, "source", None)),
    }
    peer.config = "FER() defaults: OpenCV Haar cascade, its emotion_model TFLite"
    same = sum(1 for a, b in zip(ours_n, fer_n) if a == b)
    return CompareReport(
        peer_version=dist_version("fer"),
        source=redact(name),  # a camera URL's password is not printed nor saved
        frames=n,
        warmup_frames=min(warmup, total),
        ours=ours,
        fer=peer,
        fps_ratio=round((n / sum(ours_t)) / (n / sum(fer_t)), 3),
        same_face_count_frames=same,
        same_face_count_fraction=round(same / n, 4),
        same_total_faces=bool(ours.faces == peer.faces),
        machine=machine_info(pipe.classifier),
    )


def _row(label: str, side: Side) -> list[Any]:
    lat = side.latency
    return [label, num(side.fps, 1), num(lat["p50_ms"], 2), num(lat["p99_ms"], 2), side.faces, side.frames_with_faces]


def format_compare(rep: CompareReport) -> str:
    rows = [_row("edge-fer", rep.ours), _row(f"fer {rep.peer_version or ''}".strip(), rep.fer)]
    lines = [
        f"side-by-side on {rep.source}: {rep.frames} frames (+{rep.warmup_frames} warm-up), alternating, one process",
        "",
    ]
    lines += table(["pipeline", "frames/s", "p50 ms", "p99 ms", "faces", "frames with faces"], rows)
    lines += [
        "",
        f"frames/s ratio (edge-fer / fer): {rep.fps_ratio:.2f}x",
        f"same number of faces on {rep.same_face_count_frames} of {rep.frames} frames "
        f"({100 * rep.same_face_count_fraction:.1f}%); same total: {'yes' if rep.same_total_faces else 'no'}",
        machine_line(rep.machine),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--source", required=True, help="a video file or images (decoded once, fed to both)")
    ap.add_argument("--model", help="edge-fer model bundle (default: the shipped model)")
    ap.add_argument("--config", help="edge-fer run's TOML config; flags override it")
    ap.add_argument("--detector", help="yunet (default) | haar")
    ap.add_argument("--detector-model", help="YuNet .onnx (default: the shipped one)")
    ap.add_argument("--detect-every", type=int)
    ap.add_argument("--full-every", type=int, help="full-frame detection every N frames, windows between (0: off)")
    ap.add_argument("--detect-scale", type=float)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--device", help="auto | cpu | edgetpu")
    ap.add_argument("--max-frames", type=int, default=0, help="timed frames (0: all)")
    ap.add_argument("--repeat", "--loop", dest="repeat", type=int, default=1, help="play the frames N times")
    ap.add_argument("--warmup", type=int, default=5, help="untimed frames first, for both")
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from edge_fer import config as cfgmod

    overrides = {
        "source.uri": args.source,
        "model.path": args.model,
        "detector.name": args.detector,
        "detector.model": args.detector_model,
        "detector.every": args.detect_every,
        "detector.full_every": args.full_every,
        "detector.scale": args.detect_scale,
        "model.threads": args.threads,
        "model.device": args.device,
        "output.path": os.devnull,
    }
    try:
        cfg = cfgmod.build(args.config, overrides)
        rep = compare(cfg, max_frames=args.max_frames, warmup=args.warmup, loops=args.repeat)
        if args.json:
            write_json(rep, args.json)
    except EdgeFerError as e:
        print(f"compare_fer: error: {e}", file=sys.stderr)
        return 2
    print(format_compare(rep))
    if not args.json:
        d = rep.to_dict()
        print(json.dumps({k: d[k] for k in ("fps_ratio", "same_face_count_fraction", "same_total_faces")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
