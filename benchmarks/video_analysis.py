"""`edge-fer analyze`: speed-up from 1 to 2 worker processes, and peak memory on long inputs (not a test).

    python benchmarks/video_analysis.py --clip ../shared/data/video/hamilton_clip.mp4 \
        [--videos 4] [--repeats 3] [--loops 1,10,60] [--detector yunet|haar] [--skip-speed] [--skip-memory] \
        [--json benchmarks/results/video_analysis/result.json]

Speed: ``--videos`` copies of the clip (under distinct names) are analysed by the installed
``edge-fer analyze DIR -o OUT --workers W`` in a subprocess, W = 1 and 2 interleaved ``--repeats``
times (a fresh output folder each time, so nothing is skipped). Reported: the median wall time per W,
the speed-up (median W=1 / median W=2), and the real-time factor (seconds of video per second of wall
time), also per core used (W), and per CPU second (user + system time of the command and its workers:
what a core spends, however loaded the machine is). The load average before and after is recorded.

Memory: the clip is played ``N`` times into one file with OpenCV's VideoWriter (mp4v) for each N of
``--loops``; each is analysed with ``--workers 1`` and the peak resident memory of that process is
read from ``getrusage(RUSAGE_CHILDREN)`` in a small wrapper process that runs only it. Flat memory:
the peak does not grow with N.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EDGE_FER = str(Path(sys.executable).with_name("edge-fer"))

_WRAPPER = """
import resource, subprocess, sys, time, json
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_rss_mb": ru.ru_maxrss / 1024, "stderr_tail": p.stderr[-2000:]}))
"""


def measure(cmd: list[str]) -> dict:
    """Run ``cmd`` in a wrapper process: exit code, wall time, CPU time (user + system of it and its
    processes), the peak RSS of the largest process under it (the command, or its largest worker), and
    the end of its stderr (``stderr_tail``)."""
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def write_result(result: dict, path: Path | None) -> None:
    """Print the result as JSON, and write it to ``path`` when given."""
    text = json.dumps(result, indent=2)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    print(text)


def looped(clip: Path, passes: int, target: Path, fourcc: str = "mp4v") -> tuple[Path, int]:
    """The clip played ``passes`` times into one file with OpenCV's VideoWriter; (path, frames)."""
    import cv2

    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*fourcc), fps, (w, h))
    n = 0
    for _ in range(passes):
        cap = cv2.VideoCapture(str(clip))
        while True:
            ok, img = cap.read()
            if not ok:
                break
            writer.write(img)
            n += 1
        cap.release()
    writer.release()
    return target, n


def media_seconds(index: Path) -> float:
    return sum(v["duration_s"] or 0.0 for v in json.loads(index.read_text())["videos"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", required=True, type=Path)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loops", default="1,10,60", help="Clip passes per long input for the memory test.")
    ap.add_argument(
        "--detector", default="", help="--detector of edge-fer analyze (default: edge-fer's own default, YuNet)."
    )
    ap.add_argument("--detector-model", default="", help="--detector-model (YuNet .onnx).")
    ap.add_argument("--memory-detector", default="", help="Detector for the memory test (default: --detector).")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    def det_flags(name: str) -> list[str]:
        flags = ["--detector", name] if name else []
        if name in ("yunet", "") and args.detector_model:
            flags += ["--detector-model", args.detector_model]
        return flags

    result: dict = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "clip": str(args.clip),
        "detector": args.detector or "default (yunet)",
        "load_average_at_start": os.getloadavg(),
    }
    work = Path(tempfile.mkdtemp(prefix="video-analysis-"))
    try:
        if not args.skip_speed:
            vids = work / "videos"
            vids.mkdir()
            for i in range(args.videos):
                shutil.copy(args.clip, vids / f"v{i}{args.clip.suffix}")
            runs: dict[int, list[dict]] = {1: [], 2: []}
            for r in range(args.repeats):
                for w in (1, 2):
                    out = work / f"out-{w}-{r}"
                    m = measure(
                        [EDGE_FER, "analyze", str(vids), "-o", str(out), "--workers", str(w), "-q"]
                        + det_flags(args.detector)
                    )
                    m.pop("stderr_tail")
                    m["media_s"] = media_seconds(out / "index.json")
                    runs[w].append(m)
                    print(f"workers={w} repeat={r}: {m['wall_s']:.2f} s, rc {m['rc']}", file=sys.stderr)
                    shutil.rmtree(out)
            med = {w: statistics.median(x["wall_s"] for x in runs[w]) for w in runs}
            media = runs[1][0]["media_s"]
            result["speed"] = {
                "videos": args.videos,
                "media_s_total": round(media, 3),
                "runs": {str(w): runs[w] for w in runs},
                "median_wall_s": {str(w): round(med[w], 3) for w in med},
                "speedup_2_vs_1": round(med[1] / med[2], 3),
                "realtime_factor": {str(w): round(media / med[w], 3) for w in med},
                "realtime_factor_per_core": {str(w): round(media / med[w] / w, 3) for w in med},
                # CPU time is what a core spends, whatever else the machine runs: video seconds per CPU second
                "realtime_factor_per_cpu_second": {
                    str(w): round(media / statistics.median(x["cpu_s"] for x in runs[w]), 3) for w in runs
                },
                "note": "wall time of the whole command (start-up, model loading, the index) on a shared machine",
            }
        if not args.skip_memory:
            mem = []
            det = args.memory_detector or args.detector
            for n in [int(x) for x in args.loops.split(",") if x]:
                video, frames = looped(args.clip, n, work / f"loop{n}.mp4")
                out = work / f"mem-{n}"
                m = measure([EDGE_FER, "analyze", str(video), "-o", str(out), "--workers", "1", "-q"] + det_flags(det))
                m.pop("stderr_tail")
                summary = json.loads((out / f"loop{n}" / "summary.json").read_text())
                row = {
                    "passes": n,
                    "frames": frames,
                    "media_s": summary["duration_s"],
                    "faces": summary["faces"],
                    "timeline_bytes": (out / f"loop{n}" / "timeline.csv").stat().st_size,
                    **m,
                }
                mem.append(row)
                print(
                    f"loops={n}: {frames} frames, {row['media_s']:.0f} s of video, peak RSS {m['peak_rss_mb']:.1f} MB, "
                    f"{m['wall_s']:.1f} s",
                    file=sys.stderr,
                )
                video.unlink()
                shutil.rmtree(out)
            result["memory"] = {
                "detector": det or "default (yunet)",
                "runs": mem,
                "peak_rss_growth_mb": round(mem[-1]["peak_rss_mb"] - mem[0]["peak_rss_mb"], 1),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_average_at_end"] = os.getloadavg()
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
