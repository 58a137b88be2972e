"""`edge-fer analyze` side by side with the `fer` package's `Video.analyze` on the same files (not a test).

    python benchmarks/analyze_vs_fer.py --fer-python /path/to/fer-venv/bin/python VIDEO... \
        [--workers 2] [--detector haar] [--detector-model M.onnx] [--repeats 1] [--json out.json]

`fer` runs in its own virtual environment (it wants TensorFlow and its own OpenCV build; FACTS.md: a lean
install is ``pip install --no-deps fer`` plus tensorflow-cpu, opencv-python-headless<5, setuptools<81,
pandas, requests, pillow, matplotlib, tqdm). Its default pipeline: OpenCV's Haar cascade and its
quantized mini-XCEPTION TFLite model; ``Video.analyze(detector, save_frames=False, save_video=False,
annotate_frames=False)`` then ``Video.to_csv`` (its per-frame CSV), one video after the other, in one
process. Its detector is wrapped to record which frame each result belongs to (``Video.analyze`` keeps
only frames with faces, without their number). With the headless OpenCV build, ``cv2.waitKey`` and
``cv2.destroyAllWindows`` (which ``Video.analyze`` calls even with ``display=False``) are replaced by
no-ops: they raise without a GUI.

`edge-fer analyze VIDEOS -o OUT --workers W` runs the installed command. For both, each in a wrapper
process: wall time, CPU time (user + system, all processes) and peak RSS of the largest process.
Agreement: on frames where both found exactly one face, the share where the top labels are the same
(and the share of frames with at least one face for each).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from video_analysis import EDGE_FER, measure, write_result  # benchmarks/video_analysis.py, beside this file

# runs in fer's own venv: argv = out_json, out_dir, videos...
_FER_SCRIPT = """
import json, os, sys
import cv2
# Video.analyze calls cv2.waitKey and cv2.destroyAllWindows even with display=False; the headless OpenCV
# build has no GUI and raises: make them the no-ops they are without a window
cv2.waitKey = lambda *a: -1
cv2.destroyAllWindows = lambda *a: None
from fer.fer import FER
from fer.classes import Video

out_json, out_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
videos = [os.path.abspath(v) for v in sys.argv[3:]]
# fer writes data.csv into the working folder (Video.analyze as well as Video.to_csv): work in out_dir, so
# nothing lands where the benchmark was started
os.makedirs(out_dir, exist_ok=True)
os.chdir(out_dir)
fer = FER(mtcnn=False)

class Recording:
    def __init__(self, inner):
        self.inner, self.frames = inner, []
    def detect_emotions(self, img, *a, **k):
        faces = self.inner.detect_emotions(img, *a, **k)
        self.frames.append([[list(map(int, f["box"])), {e: float(p) for e, p in f["emotions"].items()}] for f in faces])
        return faces
    def __getattr__(self, name):
        return getattr(self.inner, name)

result = {}
for i, v in enumerate(videos):
    rec = Recording(fer)
    sub = os.path.join(out_dir, str(i))
    video = Video(v, outdir=sub)
    data = video.analyze(rec, display=False, save_frames=False, save_video=False, annotate_frames=False)
    if data:  # Video.to_csv writes data.csv in the working folder, whatever file name it is given
        here = os.getcwd()
        os.chdir(sub)
        video.to_csv(data, "data.csv")
        os.chdir(here)
    result[v] = rec.frames
json.dump(result, open(out_json, "w"))
"""


def edge_frames(timeline: Path) -> dict[int, list[str]]:
    """frame -> top labels of the faces edge-fer saw in it."""
    frames: dict[int, list[str]] = {}
    with open(timeline, newline="") as fh:
        for r in csv.DictReader(fh):
            frames.setdefault(int(r["frame"]), []).append(r["label"])
    return frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--fer-python", required=True, help="Python of a virtual environment with `fer` installed.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--detector", default="", help="edge-fer's detector (default: edge-fer's own default, YuNet).")
    ap.add_argument("--detector-model", default="")
    ap.add_argument("--repeats", type=int, default=1, help="Runs of each tool (interleaved); medians reported.")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="analyze-vs-fer-"))
    videos = [v.resolve() for v in args.videos]
    edge_cmd_flags = ["--workers", str(args.workers), "-q"]
    if args.detector:
        edge_cmd_flags += ["--detector", args.detector]
    if args.detector_model:
        edge_cmd_flags += ["--detector-model", args.detector_model]
    runs: dict[str, list[dict]] = {"fer": [], "edge-fer": []}
    try:
        script = work / "fer_run.py"
        script.write_text(_FER_SCRIPT)
        fer_frames: dict = {}
        edge_out = work / "edge-0"
        for r in range(args.repeats):
            fer_json, fer_out = work / f"fer-{r}.json", work / f"fer-{r}"
            m = measure([args.fer_python, str(script), str(fer_json), str(fer_out), *map(str, videos)])
            if m["rc"] != 0:
                print(m["stderr_tail"], file=sys.stderr)
                raise SystemExit(f"fer failed (exit {m['rc']})")
            m.pop("stderr_tail")
            runs["fer"].append(m)
            fer_frames = json.loads(fer_json.read_text())
            out = work / f"edge-{r}"
            e = measure([EDGE_FER, "analyze", *map(str, videos), "-o", str(out), *edge_cmd_flags])
            e.pop("stderr_tail")
            runs["edge-fer"].append(e)
            print(f"repeat {r}: fer {m['wall_s']:.1f} s, edge-fer {e['wall_s']:.1f} s", file=sys.stderr)
        index = {v["video"]: v for v in json.loads((edge_out / "index.json").read_text())["videos"]}
        per_video = []
        both = same = 0
        for v in videos:
            row = index[str(v)]
            ours = edge_frames(Path(row["output"]) / "timeline.csv")
            theirs = fer_frames[str(v)]
            n_both = n_same = 0
            for i, faces in enumerate(theirs):
                mine = ours.get(i, [])
                if len(faces) == 1 and len(mine) == 1:
                    n_both += 1
                    emo = faces[0][1]
                    n_same += max(emo, key=emo.get) == mine[0]
            per_video.append(
                {
                    "video": str(v),
                    "frames": len(theirs),
                    "frames_with_face_fer": sum(1 for f in theirs if f),
                    "frames_with_face_edge_fer": len(ours),
                    "frames_one_face_both": n_both,
                    "top_label_agreement": round(n_same / n_both, 4) if n_both else None,
                }
            )
            both += n_both
            same += n_same
        med = {
            k: {q: round(statistics.median(x[q] for x in v), 3) for q in ("wall_s", "cpu_s", "peak_rss_mb")}
            for k, v in runs.items()
        }
        media_s = sum(index[str(v)]["duration_s"] or 0 for v in videos)
        result = {
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "load_average_at_end": os.getloadavg(),
            "media_s": round(media_s, 3),
            "runs": runs,
            "median": med,
            "wall_speedup_edge_fer_vs_fer": round(med["fer"]["wall_s"] / med["edge-fer"]["wall_s"], 2),
            "cpu_ratio_fer_vs_edge_fer": round(med["fer"]["cpu_s"] / med["edge-fer"]["cpu_s"], 2),
            "top_label_agreement": round(same / both, 4) if both else None,
            "frames_one_face_both": both,
            "per_video": per_video,
            "edge_fer_flags": edge_cmd_flags,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
