"""Frame rate of `edge-fer run` with MQTT: healthy, distant and frozen brokers vs no MQTT (not a test).

    python benchmarks/mqtt_stall.py --source ../shared/data/video/hamilton_clip.mp4 \
        [--frames 600] [--repeats 3] [--rtt-ms 50] [--per-frame] [--modes jsonl,mqtt,mqtt-rtt,mqtt-frozen] \
        [--compare-with OTHER_CHECKOUT] [--json out.json]

Each run is the installed ``edge-fer run --source CLIP --loop --max-frames N --output FILE
--http-port P [--mqtt-host 127.0.0.1 --mqtt-port B]`` in a subprocess, with a real mosquitto
(``/usr/sbin/mosquitto``, or ``$MOSQUITTO``) started by this script:

* ``jsonl``: events to a file only, the baseline;
* ``mqtt``: plus the MQTT sink and a broker on 127.0.0.1;
* ``mqtt-rtt``: the broker behind a TCP proxy in this script that delays every chunk by half of
  ``--rtt-ms`` each way (a broker ``--rtt-ms`` away);
* ``mqtt-frozen``: the broker is stopped with SIGSTOP as soon as the sink has delivered its first
  event, and stays frozen until the run has ended (then SIGCONT): a hung broker whose socket is open.

The frame rate is read from ``/metrics`` (``edge_fer_frames_total``, sampled every 0.2 s) between the
moment the run is under way (first frame; for ``mqtt-frozen``, the freeze) and the first sample at
the final frame count, so model loading, start-up and shutdown are not counted. The ``sink`` stage's
mean and maximum time per frame (from the same ``/metrics``) show directly whether the frame loop waited
on the network, independently of the machine's background load. Modes are interleaved (jsonl, mqtt, ..., jsonl, mqtt, ...)
so that background load hits them alike; the table gives every run and the median per mode, and the
median's ratio to the ``jsonl`` median of the same invocation. ``--compare-with DIR`` runs every mode a
second time per repeat with ``PYTHONPATH=DIR`` (e.g. an export of the commit before a change), interleaved,
so both versions meet the same background load.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

MOSQUITTO = os.environ.get("MOSQUITTO") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
EDGE_FER = Path(sys.executable).with_name("edge-fer")
CLI = [str(EDGE_FER)] if EDGE_FER.exists() else [sys.executable, "-m", "edge_fer.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, workdir: Path):
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n")
        self.log = open(workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        self.proc.terminate()
        self.proc.wait(5)
        self.log.close()


class DelayProxy:
    """127.0.0.1:port -> 127.0.0.1:upstream, every chunk delivered ``one_way_s`` later, in order."""

    def __init__(self, upstream: int, one_way_s: float):
        self.port = free_port()
        self.upstream, self.delay = upstream, one_way_s
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(5)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def pipe(reader, writer):
            q: asyncio.Queue = asyncio.Queue()

            async def deliver():
                while True:
                    due, data = await q.get()
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    if data is None:
                        writer.close()
                        return
                    writer.write(data)
                    await writer.drain()

            task = asyncio.ensure_future(deliver())
            try:
                while data := await reader.read(65536):
                    q.put_nowait((time.monotonic() + self.delay, data))
            except OSError:
                pass
            q.put_nowait((time.monotonic() + self.delay, None))
            await task

        async def handle(cr, cw):
            try:
                ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)
            except OSError:
                cw.close()
                return
            await asyncio.gather(pipe(cr, uw), pipe(ur, cw), return_exceptions=True)

        async def main():
            await asyncio.start_server(handle, "127.0.0.1", self.port)
            ready.set()

        self.loop.run_until_complete(main())
        self.loop.run_forever()


def metrics(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except (OSError, http.client.HTTPException):  # not up yet, or closing
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def one_run(mode: str, args: argparse.Namespace, tmp: Path, pythonpath: str | None = None) -> dict:
    http_port = free_port()
    cmd = [
        *CLI,
        "run",
        "--source",
        args.source,
        "--loop",
        "--max-frames",
        str(args.frames),
        "--output",
        str(tmp / f"{mode}.jsonl"),
        "--http-port",
        str(http_port),
    ]
    if args.per_frame:
        cmd.append("--per-frame")
    broker = proxy = None
    if mode.startswith("mqtt"):
        broker = Broker(tmp / f"broker-{mode}-{time.monotonic_ns()}")
        port = broker.port
        if mode == "mqtt-rtt":
            proxy = DelayProxy(broker.port, args.rtt_ms / 2000.0)
            port = proxy.port
        cmd += ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(port), "--mqtt-topic", f"bench-{mode}"]
    errf = open(tmp / f"{mode}.stderr", "wb")
    env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, env=env)
    samples: list[tuple[float, float, dict]] = []
    t_start = None
    frozen = False
    last: dict[str, float] = {}
    try:
        while proc.poll() is None:
            m = metrics(http_port)
            now = time.monotonic()
            if m:
                last = m
                frames = m.get("edge_fer_frames_total", 0.0)
                if t_start is None and frames > 0:
                    if mode != "mqtt-frozen":
                        t_start = now
                    elif m.get('edge_fer_sink_sent_total{sink="mqtt"}', 0) > 0:
                        broker.freeze()
                        frozen = True
                        t_start = now
                if t_start is not None:
                    samples.append((now, frames, m))
            time.sleep(0.2)
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        errf.close()
        if broker:
            broker.stop()
    if samples:  # up to the first sample at the final count (not the shutdown that follows)
        top = max(f for _, f, _ in samples)
        samples = samples[: next(i for i, (_, f, _) in enumerate(samples) if f == top) + 1]
    at_end = samples[-1][2] if samples else {}
    sink_mean = at_end.get('edge_fer_stage_latency_mean_seconds{stage="sink"}')
    sink_max = at_end.get('edge_fer_stage_latency_max_seconds{stage="sink"}')
    fps = None
    if len(samples) >= 2 and samples[-1][0] > samples[0][0]:
        fps = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
    mq = {k.split("{")[0].replace("edge_fer_sink_", ""): v for k, v in last.items() if 'sink="mqtt"' in k}
    return {
        "mode": mode,
        "exit": code,
        "fps": fps,
        "window_s": samples[-1][0] - samples[0][0] if samples else 0,
        "frozen": frozen,
        "mqtt_last": mq,
        "sink_mean_ms": None if sink_mean is None else sink_mean * 1000.0,
        "sink_max_ms": None if sink_max is None else sink_max * 1000.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rtt-ms", type=float, default=50.0)
    ap.add_argument("--per-frame", action="store_true", help="an event per face per frame (many more events)")
    ap.add_argument("--modes", default="jsonl,mqtt,mqtt-rtt,mqtt-frozen")
    ap.add_argument("--json", help="write the runs here")
    ap.add_argument(
        "--compare-with",
        metavar="DIR",
        help="also run every mode with PYTHONPATH=DIR (another checkout, e.g. the code before a "
        "change), interleaved with this one; rows labelled 'other:'",
    )
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    versions = [("", None)] + ([("other:", args.compare_with)] if args.compare_with else [])
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.repeats):
            for label, path in versions:
                for mode in modes:
                    r = one_run(mode, args, Path(d), path)
                    r["version"] = label
                    runs.append(r)
                    extra = " ".join(f"{k}={int(v)}" for k, v in sorted(r["mqtt_last"].items()))
                    print(
                        f"  run {i + 1} {label + mode:18s} exit {r['exit']} fps {r['fps'] or 0:7.1f} over "
                        f"{r['window_s']:5.1f}s sink stage mean {r['sink_mean_ms'] or 0:.3f} ms max "
                        f"{r['sink_max_ms'] or 0:.1f} ms {extra}",
                        flush=True,
                    )
    print(f"\n{'mode':18s} {'median fps':>10s} {'vs jsonl':>9s} {'sink mean ms':>12s} {'sink max ms':>11s}  runs (fps)")
    for label, _ in versions:
        mine = [r for r in runs if r["version"] == label]
        base = statistics.median([r["fps"] for r in mine if r["mode"] == "jsonl" and r["fps"]] or [float("nan")])
        for mode in modes:
            rs = [r for r in mine if r["mode"] == mode]
            vals = [r["fps"] for r in rs if r["fps"]]
            med = statistics.median(vals) if vals else float("nan")
            smean = statistics.median(
                [r["sink_mean_ms"] for r in rs if r["sink_mean_ms"] is not None] or [float("nan")]
            )
            smax = statistics.median([r["sink_max_ms"] for r in rs if r["sink_max_ms"] is not None] or [float("nan")])
            print(
                f"{label + mode:18s} {med:10.1f} {med / base:9.2f} {smean:12.3f} {smax:11.1f}  "
                f"{', '.join(f'{v:.1f}' for v in vals)}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
