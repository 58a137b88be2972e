"""Does the reliability work slow the per-frame path? ``edge-fer bench`` on the same clip with this
checkout and with another (an export of the commit before), interleaved, medians per version.

The events go to a real file (``--events``), so the sink stage includes the per-flush checks of the
events file (truncation, rotation); ``capture`` includes the live-source stall check only for cameras
(this clip is a file). Usage::

    git archive main edge_fer | tar -x -C /tmp/before
    python benchmarks/reliability_overhead.py --source ../shared/data/video/hamilton_clip.mp4 \\
        --compare-with /tmp/before --repeats 5 --loop 2 \\
        --json benchmarks/results/reliability_overhead/hamilton.json

Prints one row per version (frames/s, per-stage mean ms: medians over the repeats) and the ratio of
the medians (this checkout / the other). Compare rows of one invocation only: the machine's load
changes between invocations.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("capture", "detect", "preprocess", "classify", "quality", "track", "sink")


def bench_once(pythonpath: str, source: str, loop: int, tmp: Path) -> dict:
    out = tmp / "bench.json"
    env = {**os.environ, "PYTHONPATH": pythonpath}
    cmd = [sys.executable, "-c", "import sys; from edge_fer.cli import main; sys.exit(main(sys.argv[1:]))"]
    cmd += [
        "bench",
        "--source",
        source,
        "--loop",
        str(loop),
        "--json",
        str(out),
        "-q",
        "--events",
        str(tmp / "ev.jsonl"),
    ]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True)
    ap.add_argument("--compare-with", required=True, help="another checkout (its edge_fer/ is imported)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loop", type=int, default=2)
    ap.add_argument("--json", dest="json_path")
    a = ap.parse_args()
    versions = {"this": str(REPO), "other": str(Path(a.compare_with).resolve())}
    runs: dict[str, list[dict]] = {k: [] for k in versions}
    with tempfile.TemporaryDirectory() as d:
        for i in range(a.repeats):
            order = list(versions) if i % 2 == 0 else list(reversed(versions))  # alternate who goes first
            for name in order:
                rep = bench_once(versions[name], a.source, a.loop, Path(d))
                row = {"fps": rep["fps"], **{s: rep["stages"][s]["mean_ms"] for s in STAGES if s in rep["stages"]}}
                runs[name].append(row)
                print(f"repeat {i + 1} {name:5s} {rep['fps']:.1f} frames/s", file=sys.stderr)
    med = {k: {m: round(statistics.median(r[m] for r in rows), 4) for m in rows[0]} for k, rows in runs.items()}
    ratio = {m: round(med["this"][m] / med["other"][m], 3) if med["other"][m] else None for m in med["this"]}
    print(f"{'version':8s} " + " ".join(f"{m:>10s}" for m in med["this"]))
    for k in versions:
        print(f"{k:8s} " + " ".join(f"{med[k][m]:10.3f}" for m in med[k]))
    print(f"{'ratio':8s} " + " ".join(f"{(ratio[m] or 0):10.3f}" for m in ratio))
    if a.json_path:
        from edge_fer import jsondoc

        doc = jsondoc.document(
            "reliability-overhead",
            {
                "command": " ".join(sys.argv),
                "source": a.source,
                "loop": a.loop,
                "repeats": a.repeats,
                "units": "fps: frames/s; stages: mean ms per frame",
                "median": med,
                "ratio_this_over_other": ratio,
                "runs": runs,
            },
        )
        Path(a.json_path).parent.mkdir(parents=True, exist_ok=True)
        jsondoc.write(a.json_path, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
