"""The runtime pipeline: Source -> Detector -> preprocess -> Classifier -> Tracker -> Sinks.

Every stage is timed with :class:`StageTimes` (stage names :data:`STAGES`), cheap on the hot path
(one ``perf_counter`` pair and a ring-buffer write); percentiles are computed only when
:meth:`Pipeline.status` is asked. The benchmark uses the same class and the same names.

Build one from a :class:`~edge_fer.config.Config` with :meth:`Pipeline.from_config`, or from parts::

    pipe = Pipeline(source, detector, classifier, Tracker(), [JsonlSink("-")])
    pipe.run(max_frames=100)           # opens, loops, closes
    # or, step by step:
    pipe.open(); pipe.step(); ...; pipe.close()
    # or without a source (benchmarks): pipe.process(frame)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_fer.preprocess import to_gray
from edge_fer.redact import redact
from edge_fer.types import Event, Face, Frame, Prediction, Sink

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("capture", "detect", "preprocess", "classify", "quality", "track", "sink")


class StageStats:
    """A ring buffer of the last ``window`` durations (seconds) of one stage, plus totals."""

    __slots__ = ("buf", "n", "total", "max")

    def __init__(self, window: int = 2048):
        self.buf = np.zeros(window, np.float64)
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self.buf[self.n % len(self.buf)] = seconds
        self.n += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    def summary(self) -> dict[str, float]:
        """{"mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"} over the window (max: all time)."""
        k = min(self.n, len(self.buf))
        if k == 0:
            return {"mean_ms": 0.0, "p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        w = self.buf[:k] * 1000.0
        p50, p90, p99 = np.percentile(w, (50, 90, 99))
        return {
            "mean_ms": round(float(w.mean()), 4),
            "p50_ms": round(float(p50), 4),
            "p90_ms": round(float(p90), 4),
            "p99_ms": round(float(p99), 4),
            "max_ms": round(self.max * 1000.0, 4),
        }


class StageTimes:
    """Per-stage timings. Hot path: ``t = times.start(); ...; times.add("detect", times.start() - t)``; ``with times.time("detect"):`` for the non-critical paths."""

    def __init__(self, stages: Sequence[str] = STAGES, window: int = 2048):
        self.window = window
        self.stages: dict[str, StageStats] = {s: StageStats(window) for s in stages}

    start = staticmethod(time.perf_counter)

    def add(self, stage: str, seconds: float) -> None:
        st = self.stages.get(stage)
        if st is None:
            st = self.stages[stage] = StageStats(self.window)
        st.add(seconds)

    def time(self, stage: str):
        times = self

        class _Ctx:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                times.add(stage, time.perf_counter() - self.t0)

        return _Ctx()

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: st.summary() for name, st in list(self.stages.items())}

    def reset(self) -> None:
        for name in list(self.stages):
            self.stages[name] = StageStats(self.window)


class FpsMeter:
    """Frames per second over a sliding window of timestamps."""

    def __init__(self, window: int = 60):
        self.ts = np.zeros(window, np.float64)
        self.n = 0

    def tick(self, t: float | None = None) -> None:
        self.ts[self.n % len(self.ts)] = time.monotonic() if t is None else t
        self.n += 1

    @property
    def fps(self) -> float:
        k = min(self.n, len(self.ts))
        if k < 2:
            return 0.0
        newest = self.ts[(self.n - 1) % len(self.ts)]
        oldest = self.ts[(self.n - k) % len(self.ts)]
        return (k - 1) / (newest - oldest) if newest > oldest else 0.0


def _free_name(path: Path) -> Path:
    """``path`` when it is free or empty, else the first free ``stem.N.suffix`` (logged)."""
    p, n = path, 0
    while p.exists() and (not p.is_file() or p.stat().st_size > 0):
        n += 1
        p = path.with_name(f"{path.stem}.{n}{path.suffix}")
    if p != path:
        log.info("%s exists: writing %s instead (--overwrite replaces it)", path, p)
    return p


class Annotator:
    """Writes an annotated video (boxes, track ids, labels). Only when the user asks (--annotate)."""

    def __init__(self, path: str | Path, fps: float = 15.0, overwrite: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not overwrite:  # a restart never erases an earlier video: the next free name instead
            self.path = _free_name(self.path)
        self.fps = fps or 15.0
        self.writer = None

    def write(self, frame: Frame, boxes: Sequence[tuple[int, int, int, int]], ids: Sequence[int], labels: Sequence[str]) -> None:
        import cv2

        img = frame.image
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
        if self.writer is None:
            h, w = img.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                from edge_fer.errors import ConfigError

                raise ConfigError(f"cannot write annotated video {self.path}")
        for (x, y, w, h), tid, lab in zip(boxes, ids, labels):
            cv2.rectangle(img, (x, y), (x + w, y + h), (0, 255, 0), 2)
            cv2.putText(img, f"#{tid} {lab}", (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1, cv2.LINE_AA)
        self.writer.write(img)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


class Pipeline:
    def __init__(
        self,
        source: Any,
        detector: Any,
        classifier: Any,
        tracker: Any,
        sinks: Sequence[Sink] = (),
        *,
        detect_every: int = 1,
        annotate: str | Path | None = None,
        save_crops: str | Path | None = None,
        times: StageTimes | None = None,
        model_name: str | None = None,
        overwrite: bool = False,
        quality: Any = None,
    ):
        self.source, self.detector, self.classifier, self.tracker = source, detector, classifier, tracker
        self.quality = quality  # edge_fer.quality.QualityGate or None
        self.low_quality_faces = 0
        self.sinks: list[Sink] = list(sinks)
        self.detect_every = max(1, int(detect_every))
        self.times = times or StageTimes()
        self.fps_meter = FpsMeter()
        self.annotate_path = annotate
        self.annotator: Annotator | None = None
        self.save_crops = Path(save_crops) if save_crops else None
        self.overwrite = overwrite  # --overwrite: replace an existing annotated video
        # crops are named per run, so that a restart (frame numbers from 0 again) never replaces earlier ones
        self._run_tag = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.model_name = model_name or (classifier.describe() if hasattr(classifier, "describe") else "model")
        self.frames = 0
        self.faces = 0
        self.events = 0
        self.errors = 0
        self.crops_saved = 0
        self.crop_errors = 0
        self.last_frame_ts: float | None = None
        self._last_frame: Frame | None = None
        self._t_start = time.monotonic()
        self._opened = False
        self._closed = False
        self.on_event: list[Callable[[Event], None]] = []

    # -- construction from config ----------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, extra_sinks: Sequence[Sink] = ()) -> Pipeline:
        """Build every stage from a :class:`~edge_fer.config.Config` (sinks included)."""
        from edge_fer.classify import Classifier
        from edge_fer.detect import create_detector
        from edge_fer.sources import open_source
        from edge_fer.track import Tracker, TrackerConfig

        classifier = Classifier.from_file(cfg.model.path or None, device=cfg.model.device, threads=cfg.model.threads or None)
        d = cfg.detector
        detector = create_detector(d.name, model=d.model or None, scale=d.scale, min_size=d.min_size,
                                   score_threshold=d.score_threshold, full_every=d.full_every, frame_gap=d.every)
        s = cfg.source
        source = open_source(s.uri, width=s.width, height=s.height, fps=s.fps, loop=s.loop, max_pixels=s.max_pixels)
        if getattr(source, "live", False):
            source.wait_at_start = s.wait
        t = cfg.tracker
        tcfg = TrackerConfig(iou_threshold=t.iou_threshold, max_missed=t.max_missed, min_hits=t.min_hits,
                             ema_alpha=t.ema_alpha, switch_margin=t.switch_margin, switch_frames=t.switch_frames)
        if getattr(source, "still", False):
            tcfg.min_hits = 1  # each image is its own scene
            detector = getattr(detector, "inner", detector)  # ... so no face windows carried from the last one
        tracker = Tracker(tcfg, classifier.labels, per_frame=cfg.output.per_frame)
        sinks = build_sinks(cfg, classifier.labels) + list(extra_sinks)
        from edge_fer.quality import gate_from_config

        try:
            gate = gate_from_config(getattr(cfg, "quality", None), cfg.model.path or None, threads=cfg.model.threads or None)
        except Exception:
            for sink in sinks:
                sink.close()
            raise
        pipe = cls(source, detector, classifier, tracker, sinks, detect_every=d.every,
                   annotate=cfg.output.annotate or None, save_crops=cfg.output.save_crops or None,
                   overwrite=cfg.output.overwrite, quality=gate)
        for sink in sinks:
            if hasattr(sink, "set_status_provider"):
                sink.set_status_provider(pipe.status)
            if hasattr(sink, "set_sinks"):
                sink.set_sinks(sinks)
        return pipe

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> None:
        if not self._opened:
            if self.save_crops:
                self._check_crops_folder()
            self.source.open()
            self._opened = True
            self._t_start = time.monotonic()

    def close(self) -> None:
        """Finish: ``face_left`` for the open tracks, flush and close the sinks, release the source."""
        if self._closed:
            return
        self._closed = True
        f = self._last_frame
        try:
            events = self.tracker.finish(f.index if f else self.frames, time.time())
            self._emit(events)
        except Exception:  # pragma: no cover - never lose the close path
            log.exception("finishing tracks")
        for sink in self.sinks:
            try:
                sink.flush()
            except Exception as e:
                log.warning("flushing sink %s: %s", getattr(sink, "name", sink), e)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as e:
                log.warning("closing sink %s: %s", getattr(sink, "name", sink), e)
        if self.annotator:
            self.annotator.close()
        if self._opened:
            try:
                self.source.close()
            except Exception as e:
                log.warning("releasing source: %s", e)

    def __enter__(self) -> Pipeline:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the loop ------------------------------------------------------------------------------
    def step(self, timeout: float = 1.0) -> Frame | None | bool:
        """Capture and process one frame. Returns the frame, ``None`` when a live source had no
        new frame within ``timeout``, ``False`` at the end of a finite source."""
        t0 = time.perf_counter()
        frame = self.source.read(timeout)
        self.times.add("capture", time.perf_counter() - t0)
        if frame is None:
            return False if getattr(self.source, "finished", True) or not getattr(self.source, "live", False) else None
        self.process(frame)
        return frame

    def run(self, max_frames: int = 0, should_stop: Callable[[], bool] | None = None,
            on_frame: Callable[[Frame], None] | None = None) -> int:
        """Open, process until the end / ``max_frames`` / ``should_stop()``, close. Returns frames."""
        self.open()
        try:
            while not (should_stop and should_stop()):
                r = self.step()
                if r is False:
                    break
                if r is not None and on_frame:
                    on_frame(r)
                if max_frames and self.frames >= max_frames:
                    break
                if self.failed_output():
                    break
        finally:
            self.close()
        self.check_outcome()
        return self.frames

    def failed_output(self) -> tuple[Any, str] | None:
        """(sink, reason) for the first sink that has given up for good (its ``failed`` attribute:
        a full disk, a closed pipe; see :mod:`edge_fer.sinks.textfile`), else None. Cheap."""
        for sink in self.sinks:
            reason = getattr(sink, "failed", None)
            if reason:
                return sink, str(reason)
        return None

    def check_outcome(self) -> None:
        """After :meth:`close`: :class:`~edge_fer.errors.OutputError` when an output gave up (events
        were lost), :class:`~edge_fer.errors.SourceError` when a finite source (file, images) reached
        its end without yielding a single frame."""
        from edge_fer.errors import OutputError, SourceError

        bad = self.failed_output()
        if bad is not None:
            sink, reason = bad
            try:
                dropped = int(sink.stats().get("dropped", 0))
            except Exception:
                dropped = 0
            where = getattr(sink, "where", None) or getattr(sink, "path", None) or getattr(sink, "name", "sink")
            raise OutputError(f"output {where}: {reason}; {dropped} event(s) dropped")
        src = self.source
        if self._opened and self.frames == 0 and not getattr(src, "live", False) and getattr(src, "finished", False):
            why = getattr(src, "last_error", None)
            raise SourceError(f"{getattr(src, 'name', 'source')}: no frame could be read" + (f" ({why})" if why else ""))

    def process(self, frame: Frame) -> list[Event]:
        """Detect, classify, track and emit for one frame (every stage timed)."""
        times = self.times
        pc = time.perf_counter
        detected = self.frames % self.detect_every == 0
        t = pc()
        # one gray conversion per frame, shared by a gray detector (Haar) and the crops
        gray = frame.gray if frame.gray is not None else to_gray(frame.image)
        if detected:
            wants_gray = getattr(self.detector, "wants_gray", False)
            faces: list[Face] = self.detector.detect(gray if wants_gray else frame.image)
        else:
            faces = self.tracker.carried_faces()
        t1 = pc(); times.add("detect", t1 - t)
        boxes = [f.box for f in faces]
        batch = self.classifier.prepare(gray, boxes)
        t2 = pc(); times.add("preprocess", t2 - t1)
        preds: list[Prediction] = self.classifier.predict(batch) if boxes else []
        t3 = pc(); times.add("classify", t3 - t2)
        quality = self.quality.assess(batch, self.classifier.input_spec) if (self.quality is not None and boxes) else None
        if quality:
            self.low_quality_faces += sum(q.low for q in quality)
        tq = pc(); times.add("quality", tq - t3); t3 = tq
        events = self.tracker.update(faces, preds, frame.index, frame.ts, detected=detected, quality=quality)
        if getattr(self.source, "still", False):
            events += self.tracker.finish(frame.index, frame.ts)
            path = getattr(self.source, "current_path", None)
            if path is not None:
                for ev in events:
                    ev.extra["image"] = str(path)
        t4 = pc(); times.add("track", t4 - t3)
        self._emit(events)
        times.add("sink", pc() - t4)

        self.frames += 1
        self.faces += len(faces)
        self.last_frame_ts = frame.ts
        self._last_frame = frame
        self.fps_meter.tick()
        if self.annotate_path or self.save_crops:
            self._write_private_outputs(frame, gray, boxes, preds)
        return events

    def _emit(self, events: Sequence[Event]) -> None:
        if not events:
            return
        for ev in events:
            for sink in self.sinks:
                try:
                    sink.emit(ev)
                except Exception as e:  # a sink must not raise; if it does, count it and go on
                    self.errors += 1
                    log.warning("sink %s raised: %s", getattr(sink, "name", sink), e)
            for cb in self.on_event:
                cb(ev)
        self.events += len(events)
        for sink in self.sinks:
            try:
                sink.flush()
            except Exception as e:
                self.errors += 1
                log.warning("sink %s flush raised: %s", getattr(sink, "name", sink), e)

    def _check_crops_folder(self) -> None:
        """``--save-crops`` must name a folder we can write, checked before the first frame."""
        from edge_fer.errors import ConfigError

        assert self.save_crops is not None
        probe = self.save_crops / f".edge-fer-write-test-{os.getpid()}"
        try:
            self.save_crops.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"--save-crops {self.save_crops}: cannot write there ({e.strerror or e})") from None

    def _write_private_outputs(self, frame: Frame, gray: np.ndarray, boxes, preds) -> None:
        ids = list(self.tracker.last_assignment)
        if self.annotate_path:
            if self.annotator is None:
                self.annotator = Annotator(self.annotate_path, getattr(self.source, "fps", 0.0) or 15.0, self.overwrite)
            labels = []
            by_id = {t.id: t for t in self.tracker.tracks}
            for tid, p in zip(ids, preds):
                tr = by_id.get(tid)
                labels.append(tr.label if tr is not None and tr.label else p.label)
            self.annotator.write(frame, boxes, ids, labels)
        if self.save_crops and boxes:
            import cv2

            from edge_fer.preprocess import face_crops

            spec = self.classifier.input_spec
            self.save_crops.mkdir(parents=True, exist_ok=True)
            for crop, tid in zip(face_crops(gray, boxes, self.classifier.preprocessing, spec.width, spec.height), ids):
                path = self.save_crops / f"{self._run_tag}_f{frame.index:07d}_t{tid}.png"
                try:
                    ok = cv2.imwrite(str(path), crop)
                except cv2.error:
                    ok = False
                if ok:
                    self.crops_saved += 1
                else:
                    self.crop_errors += 1
                    if self.crop_errors in (1, 10, 100) or self.crop_errors % 1000 == 0:
                        log.warning("--save-crops: cannot write %s (%d crop(s) lost so far)", path, self.crop_errors)

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Runtime status (the HTTP sink's /metrics and /latest, systemd STATUS, logs)."""
        src = self.source.stats() if hasattr(self.source, "stats") else {}
        sink_errors = sink_dropped = sink_queued = 0
        for s in self.sinks:
            try:
                st = s.stats()
                sink_errors += int(st.get("errors", 0))
                sink_dropped += int(st.get("dropped", 0))
                sink_queued += int(st.get("queued", 0))
            except Exception:
                pass
        return {
            "fps": round(self.fps_meter.fps, 3),
            "frames": self.frames,
            "faces": self.faces,
            "low_quality_faces": self.low_quality_faces,
            "dropped_frames": int(src.get("dropped", 0)),
            "bad_frames": int(src.get("bad_frames", 0)),
            "dropped_events": sink_dropped,
            "queued_events": sink_queued,
            "errors": self.errors + self.crop_errors + int(src.get("errors", 0)) + sink_errors,
            "tracks": int(getattr(self.tracker, "active", 0)),
            "uptime_s": round(time.monotonic() - self._t_start, 3),
            "last_frame_ts": self.last_frame_ts,
            "source": redact(getattr(self.source, "name", str(self.source))),  # /metrics, MQTT stats: no password
            "model": self.model_name,
            "stages": self.times.summary(),
        }


def build_sinks(cfg: Any, labels: Sequence[str]) -> list[Sink]:
    """The sinks a config asks for: the output (jsonl/csv), then MQTT and HTTP when configured."""
    from edge_fer.sinks import create_sink

    out = cfg.output
    sinks: list[Sink] = [create_sink(out.format, path=out.path, labels=labels, overwrite=out.overwrite)]
    try:
        m = cfg.mqtt
        if m.host:
            kw = {k: v for k, v in vars(m).items() if v not in ("", None)}
            sinks.append(create_sink("mqtt", labels=tuple(labels), **kw))
        if cfg.http.port:
            sinks.append(create_sink("http", host=cfg.http.host, port=cfg.http.port, allowed_hosts=cfg.http.allowed_hosts))
    except Exception:
        for s in sinks:
            s.close()
        raise
    return sinks
