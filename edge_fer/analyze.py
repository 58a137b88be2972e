"""Video analysis (``edge-fer analyze``): recordings -> a timeline, a track table, a summary and a plot
per video, many videos at once in worker processes.

Each video goes through the runtime's own :class:`~edge_fer.pipeline.Pipeline` (the detector,
classifier and tracker of ``edge-fer run``, built from the same config schema); this module only
drives it frame by frame and writes what it saw. Times are **media time**: the frame's position in
the video (its presentation timestamp), not the wall clock.

Per video, in ``OUT/<name>/``: ``timeline.csv``, ``tracks.csv``, ``summary.json``, ``emotions.png``,
``annotated.mp4`` (``--write-annotated`` only) and ``.complete``, written last: a
rerun skips a video whose marker matches the same file and options, and redoes any other. Every
file is written under a temporary name and renamed when whole, so a killed run leaves no half file.
For the run: ``index.csv`` and ``index.json`` (one row per video). A worker process that dies
(killed, out of memory, a crash) fails at most its own video: the others are analysed again in fresh
processes (:func:`analyze_all`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_fer.errors import OUTPUT_ERRNOS, EdgeFerError, OutputError
from edge_fer.fsutil import atomic_write_bytes, opencv_path, path_text, replace_durably
from edge_fer.types import Event, Sink, SinkStats

if TYPE_CHECKING:
    from edge_fer.config import Config

log = logging.getLogger(__name__)

VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts"}
MARKER = ".complete"
OUTPUTS = ("timeline.csv", "tracks.csv", "summary.json", "emotions.png")
INDEX_FIELDS = (
    "video",
    "status",
    "output",
    "duration_s",
    "frames",
    "faces",
    "tracks",
    "dominant_label",
    "realtime_factor",
    "error",
)
PLOT_BINS = 1000  # points per track in emotions.png, however long the video: memory stays flat
PLOT_TRACKS = 6  # the longest tracks are plotted, one panel each
PLOT_BRIDGE = 2  # empty bins a line is drawn across


@dataclass
class Options:
    """What ``edge-fer analyze`` does to each video (besides the pipeline's config)."""

    every: int = 1  # analyse every K-th frame
    max_seconds: float = 0.0  # stop at this media time (0: the whole video)
    annotate: bool = False

    def fingerprint(self, cfg: Config) -> str:
        """Options and pipeline settings that change the outputs (the completion marker holds it)."""
        from edge_fer.config import to_toml

        keep = dataclasses.asdict(self)
        text = json.dumps(keep, sort_keys=True) + to_toml(cfg, redact=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- inputs -------------------------------------------------------------------------------------------


def find_videos(inputs: Sequence[str]) -> list[Path]:
    """The videos named by ``inputs``: files (taken as they are: a file that is not a video becomes a
    failed row), folders (their video files, recursively) and globs (the video files they match).
    A path that does not exist, a folder or glob without videos: :class:`EdgeFerError`."""
    found: list[Path] = []
    for item in inputs:
        p = Path(os.path.expanduser(item))
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            named = [f for f in p.rglob("*") if f.suffix.lower() in VIDEO_EXTS]
            for f in named:
                if not f.is_file() and not f.is_dir():  # a FIFO, a device, a dangling link: said, not read
                    log.warning("%s: not a regular file; skipped", f)
            vids = sorted(f for f in named if f.is_file())
            if not vids:
                raise EdgeFerError(f"no videos ({', '.join(sorted(VIDEO_EXTS))}) in folder {item}")
            found += vids
        elif glob.has_magic(item):
            matches = sorted(Path(f) for f in glob.glob(os.path.expanduser(item), recursive=True))
            vids = [f for f in matches if f.is_file() and f.suffix.lower() in VIDEO_EXTS]
            if not vids:
                raise EdgeFerError(f"no videos match {item!r}")
            found += vids
        elif os.path.lexists(p):  # a FIFO, a device, a socket, a dangling link: not a video file
            from edge_fer.fsutil import file_kind

            try:
                kind = file_kind(p.stat().st_mode)
            except OSError:
                kind = "a link to nothing"
            raise EdgeFerError(f"input {item} is {kind}, not a video file")
        else:
            raise EdgeFerError(f"input {item} does not exist")
    seen: set[Path] = set()
    unique = []
    for f in found:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique


def output_names(videos: Sequence[Path]) -> list[str]:
    """One folder name per video: its file name without the extension; names that several videos
    share get a short hash of the video's full path (the same name on every rerun)."""
    stems = [v.stem or "video" for v in videos]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    return [
        s if counts[s] == 1 else f"{s}-{hashlib.sha1(str(v.resolve()).encode()).hexdigest()[:8]}"
        for s, v in zip(stems, videos)
    ]


def prepare_output(output: str | Path, inputs: Sequence[str], videos: Sequence[Path]) -> Path:
    """Check and create the output folder: not an input, not inside an input folder, writable.
    A mistake is an :class:`EdgeFerError` (exit 2) before anything is written."""
    from edge_fer.fsutil import probe_folder, refuse_output_over_inputs

    out = Path(output).expanduser()
    refuse_output_over_inputs(out, [*inputs, *videos], "--output")
    if out.exists() and not out.is_dir():
        raise EdgeFerError(f"--output {output} is a file; give a folder")
    existed = out.exists()
    try:
        probe_folder(out)
    except OSError as e:
        if not existed:
            _remove_empty(out)
        raise EdgeFerError(f"--output {output}: cannot write there ({e.strerror or e})") from None
    _lock_output(out, output)
    return out


_locks: list[Any] = []  # the output folders this process holds (for its lifetime)


def _lock_output(out: Path, given: str | Path) -> None:
    """One ``analyze`` at a time per output folder: an exclusive lock on ``OUT/.lock`` (released when
    the process ends, however it ends). A second run on the same folder would rename its files under
    the first one's feet; it is refused, exit 2. Where ``fcntl`` does not exist (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        return
    fh = open(out / ".lock", "a+")  # noqa: SIM115 - held open for the process's lifetime
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip()
        fh.close()
        raise EdgeFerError(
            f"--output {given}: another edge-fer analyze is writing there"
            + (f" (process {holder})" if holder.isdigit() else "")
            + "; wait for it or choose another folder"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    _locks.append(fh)


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def frame_count(video: Path, max_seconds: float = 0.0) -> int:
    """The frames a video announces (0 when it cannot be opened or does not say); with
    ``max_seconds``, those that start before it."""
    import cv2

    try:
        with opencv_path(video) as name:
            cap = cv2.VideoCapture(name)
            try:
                if not cap.isOpened():
                    return 0
                n = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
                fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
                if max_seconds and fps > 0:
                    n = min(n, math.ceil(max_seconds * fps))
                return n
            finally:
                cap.release()
    except EdgeFerError:  # a name OpenCV cannot take and no link to it
        return 0


# -- one video ----------------------------------------------------------------------------------------


@dataclass
class _TrackStats:
    first_t: float
    last_t: float
    first_frame: int
    last_frame: int
    frames: int = 0
    sums: np.ndarray = field(default_factory=lambda: np.zeros(0))


class _Confirmed(Sink):
    """A sink that remembers which tracks the tracker confirmed (``face_appeared``)."""

    name = "analysis"

    def __init__(self) -> None:
        self.ids: set[int] = set()

    def emit(self, event: Event) -> None:
        if event.type == "face_appeared" and event.track_id is not None:
            self.ids.add(event.track_id)

    def close(self) -> None: ...

    def stats(self) -> SinkStats:
        return SinkStats(sent=len(self.ids))


class _Staged:
    """A text file written under a temporary name beside its target and renamed when whole."""

    def __init__(self, target: Path):
        self.target = target
        self.tmp = target.with_name(f".{target.name}.tmp")
        self.fh = open(self.tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in commit)

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        replace_durably(self.tmp, self.target)

    def discard(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        self.tmp.unlink(missing_ok=True)


def is_complete(folder: Path, video: Path, fingerprint: str) -> bool:
    """The video's outputs are whole and made from this file with these options."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker == _marker(video, fingerprint) and all((folder / n).is_file() for n in OUTPUTS)


def _marker(video: Path, fingerprint: str) -> dict[str, Any]:
    st = video.stat()
    return {"video": str(video.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "options": fingerprint}


def analyze_video(
    video: Path,
    folder: Path,
    cfg: Config,
    opts: Options,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Analyse one video into ``folder``; returns its index row. Never raises for a bad video: the
    row's ``status`` is ``failed`` and ``error`` says why."""
    row: dict[str, Any] = {"video": str(video), "output": str(folder), "status": "failed"}
    try:
        fp = opts.fingerprint(cfg)
        if is_complete(folder, video, fp):
            skipped = _row_from_summary(dict(row), folder, "skipped")
            if skipped["status"] == "skipped":
                return skipped
            log.warning("%s: %s; analysing it again", video, skipped["error"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MARKER).unlink(missing_ok=True)  # outputs change from here on
        _remove_temporary(folder)  # staged files a killed run left
        summary = _analyze(video, folder, cfg, opts, progress)
        row.update(_row_fields(summary))
        if summary["error"]:
            row["error"] = summary["error"]
            return row
        from edge_fer.fsutil import atomic_write_json

        atomic_write_json(folder / MARKER, _marker(video, fp))  # last: the outputs are whole
        row["status"] = "ok"
    except OutputError:
        _remove_temporary(folder)
        raise  # a full disk or a read-only folder: every video after this one would fail too
    except OSError as e:
        _remove_temporary(folder)
        if e.errno in OUTPUT_ERRNOS:
            raise OutputError(f"cannot write the outputs in {folder}: {e.strerror or e}") from None
        row["error"] = f"{type(e).__name__}: {e}"
    except EdgeFerError as e:
        row["error"] = str(e)
    except Exception as e:  # one bad video must not end the batch
        log.debug("analysing %s", video, exc_info=True)
        row["error"] = f"{type(e).__name__}: {e}"
    if row["status"] == "failed":
        _remove_empty(folder)  # a video that could not be read leaves no empty folder
    return row


def _remove_temporary(folder: Path) -> None:
    """The staged outputs a killed run or a failed write left in ``folder``."""
    for stale in folder.glob(".*.tmp*"):
        try:
            stale.unlink()
        except OSError:
            pass


def _row_fields(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "duration_s": summary.get("duration_s"),
        "frames": summary.get("frames"),
        "faces": summary.get("faces"),
        "tracks": summary.get("tracks"),
        "dominant_label": summary.get("dominant_label"),
        "realtime_factor": (summary.get("processing") or {}).get("realtime_factor"),
    }


def _row_from_summary(row: dict[str, Any], folder: Path, status: str) -> dict[str, Any]:
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError) as e:
        row["error"] = f"cannot read {folder / 'summary.json'}: {e}"
        return row
    row.update(_row_fields(summary))
    row["status"] = status
    return row


def _build_pipeline(video: Path, cfg: Config, annotate: Path | None, sink: Sink, stride: int) -> Any:
    from edge_fer.pipeline import Pipeline

    cfg = dataclasses.replace(
        cfg,
        source=dataclasses.replace(cfg.source, uri=str(video), loop=False),
        output=dataclasses.replace(
            cfg.output, path=os.devnull, per_frame=False, annotate=str(annotate or ""), overwrite=True
        ),
        mqtt=dataclasses.replace(cfg.mqtt, host=""),
        http=dataclasses.replace(cfg.http, port=0),
    )
    return Pipeline.from_config(cfg, extra_sinks=[sink], stride=stride)


def _analyze(
    video: Path, folder: Path, cfg: Config, opts: Options, progress: Callable[[int], None] | None
) -> dict[str, Any]:
    from edge_fer.errors import SourceError
    from edge_fer.sources import SourceMode

    confirmed = _Confirmed()
    ann_tmp = folder / ".annotated.tmp.mp4" if opts.annotate else None
    pipe = _build_pipeline(video, cfg, ann_tmp, confirmed, opts.every)
    if pipe.source.mode is not SourceMode.FILE:
        pipe.close()
        raise SourceError(f"{video} is not a video file")
    labels = tuple(pipe.classifier.labels)
    timeline = _Staged(folder / "timeline.csv")
    staged = [timeline]
    t0 = time.perf_counter()
    frames = analysed = faces = 0
    tracks: dict[int, _TrackStats] = {}
    label_s = dict.fromkeys(labels, 0.0)
    last_t = 0.0
    prev: tuple[float, list[tuple[int, int]]] | None = None  # (media time, [(track id, label index)])
    error = ""
    try:
        writer = csv.writer(timeline.fh)
        writer.writerow(["media_time_s", "frame", "track_id", "x", "y", "w", "h", "label", "track_label", *labels])
        pipe.open()
        pending = 0
        while True:
            frame = pipe.source.read()
            if frame is None:
                break
            t = frame.media_time if frame.media_time is not None else 0.0
            if opts.max_seconds and t >= opts.max_seconds:
                break
            frames += 1
            pending += 1
            last_t = t
            if progress is not None and pending >= 25:
                progress(pending)
                pending = 0
            if frame.index % opts.every:
                continue
            pipe.process(frame)
            analysed += 1
            by_id = {tr.id: tr for tr in pipe.tracker.tracks}
            this: list[tuple[int, int]] = []
            for face, pred, tid in zip(pipe.last_faces, pipe.last_predictions, pipe.tracker.last_assignment):
                faces += 1
                scores = pred.scores.astype(np.float64)
                k = int(np.argmax(scores))
                tr = by_id.get(tid)
                x, y, w, h = (int(v) for v in face.box)
                writer.writerow(
                    [f"{t:.6f}", frame.index, tid or "", x, y, w, h, labels[k], (tr.label or "") if tr else ""]
                    + [f"{s:.4f}" for s in scores]
                )
                this.append((tid, k))
                if tid:
                    st = tracks.get(tid)
                    if st is None:
                        st = tracks[tid] = _TrackStats(t, t, frame.index, frame.index, sums=np.zeros(len(labels)))
                    st.last_t, st.last_frame = t, frame.index
                    st.frames += 1
                    st.sums += scores
            if prev is not None:  # the previous analysed frame's faces held their labels until now
                for _, k in prev[1]:
                    label_s[labels[k]] += t - prev[0]
            prev = (t, this)
        if progress is not None and pending:
            progress(pending)
    except Exception:
        for s in staged:
            s.discard()
        pipe.close()
        if ann_tmp is not None:
            ann_tmp.unlink(missing_ok=True)
        raise
    pipe.close()
    step = 1.0 / pipe.source.fps if pipe.source.fps > 0 else 0.0
    if prev is not None:  # the last analysed frame lasts as long as the frames it stands for
        for _, k in prev[1]:
            label_s[labels[k]] += (last_t - prev[0]) + step
    wall = time.perf_counter() - t0
    src = pipe.source.stats()
    if frames == 0:
        timeline.discard()
        why = pipe.source.last_error
        raise SourceError(f"{video}: no frame could be read" + (f" ({why})" if why else ""))
    ended_early = getattr(pipe.source, "ended_early", None)
    if ended_early and not opts.max_seconds:
        error = f"damaged or truncated: {ended_early}"
    duration = last_t + step
    tracks = {k: v for k, v in tracks.items() if k in confirmed.ids}
    timeline.commit()
    _write_tracks(folder / "tracks.csv", tracks, labels)
    total = sum(label_s.values())
    share = {k: round(v / total, 4) if total > 0 else 0.0 for k, v in label_s.items()}
    det = cfg.detector
    summary = {
        "video": path_text(video),
        "complete": not error,
        "error": error or None,  # null when complete, as in index.json
        "duration_s": round(duration, 3),
        "fps": round(pipe.source.fps, 3),
        "frames": frames,
        "frames_analysed": analysed,
        "bad_frames": int(src.get("bad_frames", 0)),
        "faces": faces,
        "tracks": len(tracks),
        "face_seconds": round(total, 3),
        "label_seconds": {k: round(v, 3) for k, v in label_s.items()},
        "label_share": share,
        "dominant_label": max(share, key=lambda k: share[k]) if total > 0 else None,
        "processing": {
            "wall_s": round(wall, 3),
            "frames_per_s": round(frames / wall, 2) if wall > 0 else None,
            "realtime_factor": round(duration / wall, 2) if wall > 0 else None,
            "workers_note": "one single-threaded process per video",
        },
        "detector": {"name": det.name, "model": det.model or None, "every": det.every, "scale": det.scale},
        "model": pipe.model_name,
        "options": {"every": opts.every, "max_seconds": opts.max_seconds or None, "annotate": opts.annotate},
        "time_basis": "media time: seconds from the start of the video (frame presentation timestamps)",
    }
    try:
        plot_emotions(folder / "timeline.csv", folder / "emotions.png", labels, tracks, duration, analysed)
    except (OutputError, OSError):
        raise  # the folder cannot take the picture: the outputs are not whole
    except Exception as e:  # a drawing that failed: the results stand, the video is not complete
        log.warning("%s: emotions.png not drawn: %s", video, e)
        error = error or f"emotions.png not drawn: {type(e).__name__}: {e}"
        summary["complete"], summary["error"] = False, error
    if ann_tmp is not None and ann_tmp.exists():
        replace_durably(ann_tmp, folder / "annotated.mp4")
    from edge_fer import jsondoc

    jsondoc.write(folder / "summary.json", jsondoc.document("analysis", summary))
    return summary


def _write_tracks(path: Path, tracks: dict[int, _TrackStats], labels: Sequence[str]) -> None:
    out = _Staged(path)
    try:
        w = csv.writer(out.fh)
        w.writerow(
            ["track_id", "start_s", "end_s", "duration_s", "first_frame", "last_frame", "frames", "dominant_label"]
            + [f"mean_{k}" for k in labels]
        )
        for tid, st in sorted(tracks.items()):
            mean = st.sums / max(1, st.frames)
            w.writerow(
                [tid, f"{st.first_t:.3f}", f"{st.last_t:.3f}", f"{st.last_t - st.first_t:.3f}"]
                + [st.first_frame, st.last_frame, st.frames, labels[int(np.argmax(mean))]]
                + [f"{m:.4f}" for m in mean]
            )
        out.commit()
    except BaseException:
        out.discard()
        raise


def plot_emotions(
    timeline: Path,
    target: Path,
    labels: Sequence[str],
    tracks: dict[int, _TrackStats],
    duration: float,
    frames: int = PLOT_BINS,
) -> None:
    """``emotions.png``: the class probabilities over media time, one panel per track (the longest
    :data:`PLOT_TRACKS`), drawn with OpenCV (:mod:`edge_fer.plotimg`: no matplotlib on the device).
    The timeline is read back as a stream into at most :data:`PLOT_BINS` bins per track, and no more
    bins than the ``frames`` analysed (narrower bins would hold no frame every other bin, and the
    lines would break at each), so memory does not grow with the video."""
    from edge_fer.plotimg import line_chart

    chosen = sorted(tracks, key=lambda k: -tracks[k].frames)[:PLOT_TRACKS]
    chosen.sort()
    slot = {tid: i for i, tid in enumerate(chosen)}
    span = max(duration, 1e-6)
    bins = max(1, min(PLOT_BINS, frames))
    sums = np.zeros((len(chosen), bins, len(labels)))
    counts = np.zeros((len(chosen), bins))
    with open(timeline, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            i = slot.get(int(r["track_id"])) if r["track_id"] else None
            if i is None:
                continue
            b = min(bins - 1, int(float(r["media_time_s"]) / span * bins))
            sums[i, b] += [float(r[k]) for k in labels]
            counts[i, b] += 1
    # bins where a track was not seen are NaN: its lines break where it was gone for more than
    # PLOT_BRIDGE bins (a frame's timestamp jitter can leave one bin empty)
    with np.errstate(invalid="ignore", divide="ignore"):
        panels = [sums[i] / counts[i][:, None] for i in range(len(chosen))]
    centres = (np.arange(bins) + 0.5) / bins * span
    png = line_chart(
        centres,
        panels,
        [f"track {t}" for t in chosen],
        list(labels),
        span,
        "media time (s)",
        "no face tracked",
        bridge=PLOT_BRIDGE,
    )
    atomic_write_bytes(target, png)


# -- many videos --------------------------------------------------------------------------------------

_worker: dict[str, Any] = {}
WORKER_DIED = "its worker process died (killed, out of memory or a crash)"


def _single_threaded() -> None:
    import cv2

    cv2.setNumThreads(1)


def _init_worker(queue: Any, started: Any, level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    _single_threaded()
    _worker["queue"] = queue
    _worker["started"] = started


def _run_one(i: int, video: Path, folder: Path, cfg: Config, opts: Options) -> dict[str, Any]:
    _worker["started"][i] = 1  # shared memory, seen by the parent at once: this video is in flight
    queue = _worker["queue"]
    return analyze_video(video, folder, cfg, opts, lambda n: queue.put((i, n)))


def analyze_all(
    jobs: Sequence[tuple[Path, Path]],
    cfg: Config,
    opts: Options,
    workers: int,
    progress: Callable[[int], None] | None = None,
    done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Analyse ``(video, folder)`` jobs, ``workers`` at a time (each a single-threaded process; one
    runs in this process). Rows in the order of ``jobs``.

    A worker process that dies (killed, out of memory, a crash in a decoder) breaks its pool, which
    loses every video it had not finished: they are analysed again in fresh processes, those the dead
    pool had not started first, then those that were in flight one at a time. One that is in flight
    when a pool breaks a second time is the likely cause: it is failed (:data:`WORKER_DIED`), its
    staged files removed, and the batch goes on (at most one broken pool per video). ``progress`` is
    given back (a negative count) the frames of a lost video."""
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, threads=1))
    if workers <= 1 or len(jobs) <= 1:
        _single_threaded()
        rows = []
        for video, folder in jobs:
            rows.append(analyze_video(video, folder, cfg, opts, progress))
            if done:
                done(rows[-1])
        return rows
    results: dict[int, dict[str, Any]] = {}
    deaths: dict[int, int] = {}  # video -> pools that broke while it was in flight
    todo = list(range(len(jobs)))
    breaks = 0
    while todo:
        fresh = [i for i in todo if not deaths.get(i)]
        batch = fresh or todo  # suspects one at a time: a second death then names its video
        lost, in_flight = _pool_round(batch, jobs, cfg, opts, workers if fresh else 1, results, progress, done)
        todo = [i for i in todo if i not in batch]
        if not lost:
            continue
        breaks += 1
        for i in in_flight:
            deaths[i] = deaths.get(i, 0) + 1
        for i in lost:
            if deaths.get(i, 0) < 2 and breaks <= len(jobs):
                todo.append(i)
                continue
            video, folder = jobs[i]
            _remove_temporary(folder)  # what the dead worker had staged
            _remove_empty(folder)
            results[i] = {"video": str(video), "output": str(folder), "status": "failed", "error": WORKER_DIED}
            if done:
                done(results[i])
        if todo:
            log.warning("a worker process died; analysing %d video(s) again in new processes", len(todo))
    return [results[i] for i in range(len(jobs))]


def _pool_round(
    todo: Sequence[int],
    jobs: Sequence[tuple[Path, Path]],
    cfg: Config,
    opts: Options,
    workers: int,
    results: dict[int, dict[str, Any]],
    progress: Callable[[int], None] | None,
    done: Callable[[dict[str, Any]], None] | None,
) -> tuple[list[int], set[int]]:
    """Analyse the videos ``todo`` (indexes into ``jobs``) in one process pool, their rows into
    ``results``; returns the videos lost to a broken pool and those of them that were in flight."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()  # a fresh one: a worker killed while writing to the last one held its lock
    started = ctx.RawArray("b", len(jobs))
    frames: dict[int, int] = {}  # video -> frames reported to progress
    lost: list[int] = []
    level = logging.getLogger().getEffectiveLevel()
    with ProcessPoolExecutor(
        max_workers=min(workers, len(todo)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(queue, started, level),
    ) as pool:
        with _workers_skip_main():  # the workers are started by the first submit
            futures = {pool.submit(_run_one, i, *jobs[i], cfg, opts): i for i in todo}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(queue, progress, frames)
            for fut in finished:
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except OutputError:  # the output folder cannot be written: stop the batch (exit 74)
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
                except BrokenProcessPool:  # a worker died: this video's result is lost, not failed
                    lost.append(i)
                    continue
                except Exception as e:  # a result that could not come back
                    video, folder = jobs[i]
                    results[i] = {"video": str(video), "output": str(folder), "status": "failed", "error": str(e)}
                if done:
                    done(results[i])
        _drain(queue, progress, frames)
    queue.close()
    if progress is not None:
        for i in lost:
            if frames.get(i):
                progress(-frames[i])  # counted again when it is analysed again
    return sorted(lost), {i for i in lost if started[i]}


@contextlib.contextmanager
def _workers_skip_main() -> Iterator[None]:
    """While worker processes are started: a spawned process runs the parent's main script again
    before its task (``multiprocessing``'s "main module" fix-up), and here that script is the
    ``edge-fer`` command, which imports the whole command line (typer, rich: about a tenth of a second
    per worker, a large share of a short video). The workers need nothing from it
    (:func:`_run_one` and :func:`_init_worker` are imported by name), so the script's path is hidden
    from the start-up data. An interactive or ``python -m`` main is left alone."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _drain(queue: Any, progress: Callable[[int], None] | None, frames: dict[int, int]) -> None:
    import queue as queue_mod

    while True:
        try:
            i, n = queue.get_nowait()
        except (queue_mod.Empty, OSError, ValueError, EOFError):
            return
        frames[i] = frames.get(i, 0) + n
        if progress is not None:
            progress(n)


def write_index(out: Path, rows: Iterable[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    """``index.csv`` and ``index.json`` (one row per video), atomically; returns the JSON document."""
    from edge_fer import jsondoc
    from edge_fer.fsutil import atomic_write_text

    rows = list(rows)
    # names that are not UTF-8 (a video, its folder, an error naming them) as \xNN escapes
    clean = [
        {k: path_text(v) if isinstance(v, str) else v for k, v in ((k, r.get(k)) for k in INDEX_FIELDS)} for r in rows
    ]
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=INDEX_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in clean:
        w.writerow({k: "" if v is None else v for k, v in r.items()})
    atomic_write_text(out / "index.csv", buf.getvalue())
    counts = {s: sum(1 for r in clean if r["status"] == s) for s in ("ok", "skipped", "failed", "pending")}
    extra = {k: path_text(v) if isinstance(v, str) else v for k, v in extra.items()}
    doc = jsondoc.document("analysis-index", {**extra, "counts": counts, "videos": clean})
    jsondoc.write(out / "index.json", doc)
    return doc
