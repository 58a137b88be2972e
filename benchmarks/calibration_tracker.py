"""The tracker's label hysteresis against calibrated scores: label switches per track on a real clip.

Temperature scaling changes no prediction but makes the scores sharper (the shipped model's mean top
probability goes from ~0.36 to ~0.72), and the tracker's ``switch_margin`` (how far another label's
smoothed probability must lead) reads those numbers. This runs ``edge-fer run`` on a clip with each
bundle and each margin and counts ``expression_changed`` events per confirmed track, plus how often the
smoothed top probability of a track crosses a few thresholds, so that a default can be chosen on
evidence::

    python benchmarks/calibration_tracker.py --model before.tflite --model after.tflite \\
        --source ../shared/data/video/hamilton_clip.mp4 --json benchmarks/results/calibration/tracker.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from edge_fer import jsondoc
from edge_fer.config import TrackerConfig

EDGE_FER = str(Path(sys.executable).with_name("edge-fer"))


def run_clip(model: Path, source: Path, margin: float, work: Path) -> dict:
    cfg = work / "tracker.toml"
    cfg.write_text(f"[tracker]\nswitch_margin = {margin}\n")
    events = work / "events.jsonl"
    events.unlink(missing_ok=True)
    cmd = [EDGE_FER, "run", "-c", str(cfg), "--source", str(source), "--model", str(model)]
    cmd += ["--output", str(events), "--per-frame", "--no-quality"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"edge-fer run failed: {p.stderr[-2000:]}")
    rows = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    kinds = Counter(r.get("type") for r in rows)
    tracks = {r.get("track_id") for r in rows if r.get("type") == "face_appeared"}
    switches = Counter(r.get("track_id") for r in rows if r.get("type") == "expression_changed")
    per_face = [r for r in rows if r.get("type") == "face"]
    conf = [float(r["confidence"]) for r in per_face if "confidence" in r]
    return {
        "switch_margin": margin,
        "tracks": len(tracks),
        "expression_changed": int(kinds.get("expression_changed", 0)),
        "switches_per_track": round(sum(switches.values()) / max(1, len(tracks)), 3),
        "face_events": len(per_face),
        "mean_smoothed_top_probability": round(sum(conf) / len(conf), 4) if conf else None,
        "share_top_probability_over": {
            str(t): round(sum(c > t for c in conf) / len(conf), 4) if conf else None for t in (0.5, 0.6, 0.8)
        },
        "labels": dict(Counter(r.get("label") for r in per_face)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, type=Path)
    ap.add_argument("--source", required=True, type=Path)
    ap.add_argument("--margin", action="append", type=float, help="switch_margin values (repeatable)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    margins = a.margin or [0.05, TrackerConfig().switch_margin, 0.15, 0.2, 0.3]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in a.model:
            for m in margins:
                r = {"model": str(model), **run_clip(model, a.source, m, Path(tmp))}
                print(
                    f"{model.name:<28} margin {m:<5} tracks {r['tracks']:>2} switches {r['expression_changed']:>3} "
                    f"({r['switches_per_track']}/track) mean top p {r['mean_smoothed_top_probability']}"
                )
                results.append(r)
    doc = jsondoc.document(
        "bench-calibration-tracker",
        {
            "command": " ".join(["python", "benchmarks/calibration_tracker.py", *(argv or sys.argv[1:])]),
            "source": str(a.source),
            "tracker_defaults": vars(TrackerConfig()),
            "results": results,
        },
    )
    if a.json:
        jsondoc.write(a.json, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
