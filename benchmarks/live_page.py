"""What the live page and its preview cost the frame loop (not a test).

    python benchmarks/live_page.py --source ../shared/data/video/hamilton_clip.mp4 \\
        [--frames 200] [--repeats 5] [--preview-fps 5] [--json out.json]

Two pipelines built as ``edge-fer run`` builds them (the shipped model, the default detector, the
video looped, events to /dev/null, the HTTP sink on a free loopback port), one with ``http.preview``
off and one with it on. The frame loop (``Pipeline.step``: decode, detect, classify, track, sinks and
the HTTP sink's frame observer) runs in this process's main thread for ``--frames`` frames per trial;
frames/s = frames / wall time of the trial. On a shared machine wall time swings with the other jobs;
the CPU time per frame of the loop's thread (``time.thread_time``) and of the whole process (the loop,
the server, the encoder; ``time.process_time``) swing much less and show where the cost goes. Conditions:

* ``preview_off``: the preview disabled (the default), nobody watching: the baseline;
* ``viewers_0``: the preview enabled, nobody watching (its cost must be nil);
* ``page_open``: preview enabled, one client polling ``/api/state`` once a second like the page;
* ``viewers_1``, ``viewers_3``: 1 or 3 clients reading ``/stream.mjpg``.

Clients are separate processes (they do not share this process's interpreter lock), started before
the trial and checked to have received frames. Conditions are interleaved in every repeat so that
background load hits them alike; the report gives every trial, the median per condition and its ratio
to the ``preview_off`` median of the same run, plus the frames the encoder produced per second while
viewers watched (the rate limit).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from edge_fer import config as cfgmod
from edge_fer import jsondoc
from edge_fer.pipeline import Pipeline
from edge_fer.sinks.http import HttpSink

CONDITIONS = ("preview_off", "viewers_0", "page_open", "viewers_1", "viewers_3")

# a client in its own process: reads the MJPEG stream (or polls /api/state) until SIGTERM, then prints
# how many JPEG parts (or state documents) it received
CLIENT = r"""
import signal, socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
n = 0
def done(*_):
    print(n, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
if mode == "stream":
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    tail = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            done()
        buf = tail + chunk
        n += buf.count(b"Content-Type: image/jpeg")
        tail = buf[-40:]
else:
    import urllib.request
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as r:
            r.read()
        n += 1
        time.sleep(1.0)
"""


def build(source: str, preview: bool, preview_fps: float) -> tuple[Pipeline, HttpSink]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = cfgmod.Config()
    cfg.source.uri, cfg.source.loop = source, True
    cfg.output.path = os.devnull
    cfg.http.port = port
    cfg.http.preview, cfg.http.preview_fps = preview, preview_fps
    cfgmod.validate(cfg)
    pipe = Pipeline.from_config(cfg)
    pipe.open()
    sink = next(s for s in pipe.sinks if isinstance(s, HttpSink))
    return pipe, sink


def run_frames(pipe: Pipeline, n: int) -> tuple[float, float, float]:
    """(frames/s of wall time, CPU ms per frame of the loop's thread, CPU ms per frame of the whole
    process: the loop plus the server, the preview encoder and its viewers' threads)."""
    t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    done = 0
    while done < n:
        if pipe.step(timeout=1.0):
            done += 1
    wall, loop_cpu, proc_cpu = time.perf_counter() - t0, time.thread_time() - c0, time.process_time() - p0
    return n / wall, 1000.0 * loop_cpu / n, 1000.0 * proc_cpu / n


def start_clients(port: int, mode: str, k: int) -> list[subprocess.Popen]:
    return [
        subprocess.Popen([sys.executable, "-c", CLIENT, str(port), mode], stdout=subprocess.PIPE, text=True)
        for _ in range(k)
    ]


def stop_clients(procs: list[subprocess.Popen]) -> list[int]:
    got = []
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        out, _ = p.communicate(timeout=10)
        got.append(int(out.strip() or 0))
    return got


def micro_costs(pipe: Pipeline, sink: HttpSink, n: int = 60) -> dict[str, float]:
    """Median costs of the preview's parts on real frames of the clip, each timed alone (steadier than
    frames/s on a busy machine): the frame loop's share while a viewer watches (the frame observer's
    snapshot and the frame copy, :meth:`Preview.offer`, at most ``preview_fps`` times a second), the
    observer's cost while nobody watches, and the worker's drawing + JPEG encoding of one frame."""
    preview = sink.preview
    assert preview is not None
    observe = sink.frame_observer()
    idle, offer, encode = [], [], []
    for _ in range(n):
        frame = pipe.step(timeout=1.0)
        if not frame or frame is True:
            continue
        tracks = pipe.tracker.tracks
        t = time.perf_counter()
        observe(frame, tracks)  # nobody watches: returns at once
        idle.append(time.perf_counter() - t)
        faces = [(tr.box, f"#{tr.id} {tr.label}") for tr in tracks]
        t = time.perf_counter()
        pending = (frame.image.copy(), faces)  # what offer() does on the loop
        offer.append(time.perf_counter() - t)
        t = time.perf_counter()
        preview._encode(*pending)
        encode.append(time.perf_counter() - t)

    def med_ms(v: list[float]) -> float:
        return round(1000.0 * statistics.median(v), 4)

    return {
        "observer_idle_ms": med_ms(idle),
        "loop_share_per_preview_frame_ms": med_ms(offer),
        "encode_ms_per_preview_frame": med_ms(encode),
        "encoder_cpu_share_of_one_core_at_preview_fps": round(statistics.median(encode) * preview.fps, 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--preview-fps", type=float, default=5.0)
    ap.add_argument("--json", default="")
    a = ap.parse_args()

    pipes = {False: build(a.source, False, a.preview_fps), True: build(a.source, True, a.preview_fps)}
    for pipe, _ in pipes.values():  # warm-up: model, decoder, caches
        run_frames(pipe, 30)
    trials: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    loop_ms: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    proc_ms: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    received: dict[str, list[int]] = {c: [] for c in CONDITIONS}
    encoded_fps: list[float] = []
    for r in range(a.repeats):
        for cond in CONDITIONS:
            pipe, sink = pipes[cond != "preview_off"]
            mode, k = {"page_open": ("state", 1), "viewers_1": ("stream", 1), "viewers_3": ("stream", 3)}.get(
                cond, ("", 0)
            )
            procs = start_clients(sink.port, mode, k) if k else []
            if mode == "stream":  # wait until every viewer is connected and served
                deadline = time.monotonic() + 20
                while sink.preview is not None and sink.preview.stats().viewers < k and time.monotonic() < deadline:
                    pipe.step(timeout=1.0)
            enc0 = sink.preview.stats().encoded if sink.preview is not None else 0
            t0 = time.perf_counter()
            fps, loop_cpu, proc_cpu = run_frames(pipe, a.frames)
            wall = time.perf_counter() - t0
            enc = (sink.preview.stats().encoded - enc0) if sink.preview is not None else 0
            got = stop_clients(procs)
            deadline = time.monotonic() + 20  # untimed: until the server has noticed the viewers left
            while sink.preview is not None and sink.preview.stats().viewers and time.monotonic() < deadline:
                pipe.step(timeout=1.0)
            trials[cond].append(round(fps, 2))
            loop_ms[cond].append(round(loop_cpu, 3))
            proc_ms[cond].append(round(proc_cpu, 3))
            received[cond].append(sum(got))
            if mode == "stream":
                encoded_fps.append(round(enc / wall, 2))
            print(
                f"repeat {r + 1}/{a.repeats} {cond:12s} {fps:7.2f} frames/s  loop {loop_cpu:6.2f} ms CPU/frame  "
                f"process {proc_cpu:6.2f} ms CPU/frame  clients received {got}",
                flush=True,
            )
    micro = micro_costs(pipes[True][0], pipes[True][1])
    for pipe, _ in pipes.values():
        pipe.close()

    base = statistics.median(trials["preview_off"])
    summary = {
        c: {
            "median_fps": round(statistics.median(v), 2),
            "ratio_to_preview_off": round(statistics.median(v) / base, 3),
            "median_loop_cpu_ms_per_frame": round(statistics.median(loop_ms[c]), 3),
            "median_process_cpu_ms_per_frame": round(statistics.median(proc_ms[c]), 3),
        }
        for c, v in trials.items()
    }
    print("\ncondition     median frames/s   vs preview off   loop CPU ms/frame   process CPU ms/frame")
    for c, s in summary.items():
        print(
            f"{c:12s}  {s['median_fps']:15.2f}   {s['ratio_to_preview_off']:14.3f}   "
            f"{s['median_loop_cpu_ms_per_frame']:17.3f}   {s['median_process_cpu_ms_per_frame']:20.3f}"
        )
    print(f"preview frames encoded per second while viewers watched: {encoded_fps}")
    print(f"preview parts, timed alone (median): {micro}")
    body = {
        "command": "python benchmarks/live_page.py " + " ".join(sys.argv[1:]),
        "source": Path(a.source).name,
        "frames_per_trial": a.frames,
        "repeats": a.repeats,
        "preview_fps": a.preview_fps,
        "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "summary": summary,
        "trials_fps": trials,
        "trials_loop_cpu_ms_per_frame": loop_ms,
        "trials_process_cpu_ms_per_frame": proc_ms,
        "clients_received": received,
        "encoded_fps_while_watched": encoded_fps,
        "preview_parts": micro,
    }
    if a.json:
        jsondoc.write(a.json, jsondoc.document("live-page-bench", body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
