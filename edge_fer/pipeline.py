"""The runtime pipeline: Source -> Detector -> preprocess -> Classifier -> quality -> Tracker -> Sinks.

Every stage is timed with :class:`~edge_fer.timing.StageTimes` (stage names :data:`STAGES`, the one
definition for the runtime and the benchmark), cheap on the hot path; percentiles are computed only
when :meth:`Pipeline.status` is asked.

Build one from a :class:`~edge_fer.config.Config` with :meth:`Pipeline.from_config`, or from parts,
and drive it with :class:`~edge_fer.daemon.Daemon` (signals, systemd, ``max_frames``)::

    pipe = Pipeline(source, detector, classifier, Tracker(), [JsonlSink(OutputConfig())])
    Daemon(pipe, max_frames=100).run()
    # or, step by step:
    pipe.open(); pipe.step(); ...; pipe.close(); pipe.check_outcome()
    # or without a source (benchmarks): pipe.process(frame)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_fer.annotate import Annotator
from edge_fer.annotate import check_target as check_annotate_target
from edge_fer.crops import CropSaver
from edge_fer.detect import Detector
from edge_fer.fsutil import path_text
from edge_fer.preprocess import to_gray
from edge_fer.redact import redact
from edge_fer.sources import Source, SourceMode
from edge_fer.timing import FpsMeter, StageTimes
from edge_fer.track import Tracker
from edge_fer.types import Event, Face, Frame, FrameObserver, Prediction, Sink

if TYPE_CHECKING:
    from edge_fer.classify import Classifier
    from edge_fer.config import Config
    from edge_fer.quality import QualityGate

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("capture", "detect", "preprocess", "classify", "quality", "track", "sink")

__all__ = ["STAGES", "Pipeline", "PipelineStatus", "StageTimes"]


@dataclass
class PipelineStatus:
    """The runtime's status: the HTTP sink's /metrics and /latest, MQTT stats, systemd STATUS, logs."""

    fps: float
    frames: int
    faces: int
    low_quality_faces: int
    dropped_frames: int  # live source: frames replaced before they were read
    bad_frames: int  # video: unreadable frames skipped
    dropped_events: int
    queued_events: int
    errors: int
    tracks: int  # confirmed tracks now
    uptime_s: float
    last_frame_ts: float | None
    source: str  # credentials hidden
    model: str
    stages: dict[str, dict[str, float]]  # stage -> {mean_ms, p50_ms, p90_ms, p99_ms, max_ms}
    detector: str = ""  # the face detector in use ("haar+roi", "yunet")
    source_connected: bool | None = None  # a live source: connected now; None for files and images

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Pipeline:
    def __init__(
        self,
        source: Source,
        detector: Detector,
        classifier: Classifier,
        tracker: Tracker,
        sinks: Sequence[Sink] = (),
        *,
        detect_every: int = 1,
        annotate: str | Path | None = None,
        save_crops: str | Path | None = None,
        times: StageTimes | None = None,
        model_name: str | None = None,
        overwrite: bool = False,
        quality: QualityGate | None = None,
    ):
        self.source, self.detector, self.classifier, self.tracker = source, detector, classifier, tracker
        self.quality = quality
        self.low_quality_faces = 0
        self.sinks: list[Sink] = list(sinks)
        # called after every frame (the HTTP sink's live page and preview); empty: nothing is called
        self.observers: list[FrameObserver] = [o for s in self.sinks if (o := s.frame_observer()) is not None]
        self.detect_every = max(1, int(detect_every))
        self.times = times or StageTimes(STAGES)
        self.fps_meter = FpsMeter()
        self.annotate_path = annotate
        self.annotator: Annotator | None = None
        self.crops = CropSaver(save_crops) if save_crops else None
        self.overwrite = overwrite  # --overwrite: replace an existing annotated video
        self.model_name = model_name or classifier.describe()
        self.frames = 0
        self.faces = 0
        self.errors = 0
        self.last_frame_ts: float | None = None
        self._last_frame: Frame | None = None
        self.last_faces: list[Face] = []
        self.last_predictions: list[Prediction] = []
        self._t_start = time.monotonic()
        self._opened = False
        self._closed = False

    # -- construction from config ----------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Config, extra_sinks: Sequence[Sink] = (), *, stride: int = 1) -> Pipeline:
        """Build every stage from a (validated) :class:`~edge_fer.config.Config` (sinks included).
        ``stride``: the caller processes only every stride-th frame of a video (``edge-fer analyze
        --every``); the detector's full-frame period and the tracker's ``max_missed`` stay counted in
        the video's frames."""
        from edge_fer.classify import Classifier
        from edge_fer.detect import build_detector
        from edge_fer.interpreter import auto_threads
        from edge_fer.quality import gate_from_config
        from edge_fer.sinks import build_sinks
        from edge_fer.sources import open_source

        m, s, d = cfg.model, cfg.source, cfg.detector
        classifier = Classifier.from_file(m.path or None, device=m.device, threads=m.threads or auto_threads())
        source = open_source(
            s.uri,
            width=s.width,
            height=s.height,
            fps=s.fps,
            loop=s.loop,
            wait=s.wait,
            max_pixels=s.max_pixels,
            stall_timeout=s.stall_timeout,
        )
        still = source.mode is SourceMode.STILL
        # each still image is its own scene: no face windows carried from the last one, a face counts at once
        detector = build_detector(d, windows=not still, stride=stride)
        inner = getattr(detector, "inner", detector)
        log.info(
            "detector %s (%s), scale %g, %s",
            inner.name,
            getattr(inner, "model_path", None),
            d.scale,
            f"full pass every {d.full_every} frames" if d.full_every and not still else "full frame",
        )
        tracker_cfg = dataclasses.replace(cfg.tracker, min_hits=1) if still else cfg.tracker
        if stride > 1:
            tracker_cfg = dataclasses.replace(tracker_cfg, max_missed=tracker_cfg.max_missed * stride)
        tracker = Tracker(tracker_cfg, classifier.labels, per_frame=cfg.output.per_frame)
        if cfg.output.annotate:  # before the events file is opened: a refused run leaves nothing behind
            check_annotate_target(cfg.output.annotate)
        sinks = build_sinks(cfg, classifier.labels) + list(extra_sinks)
        try:
            gate = gate_from_config(cfg.quality, m.path or None, threads=m.threads or auto_threads())
        except Exception:
            for sink in sinks:
                sink.close()
            raise
        pipe = cls(
            source,
            detector,
            classifier,
            tracker,
            sinks,
            detect_every=d.every,
            annotate=cfg.output.annotate or None,
            save_crops=cfg.output.save_crops or None,
            overwrite=cfg.output.overwrite,
            quality=gate,
        )
        for sink in sinks:
            sink.set_status_provider(pipe.status)
            sink.set_sinks(sinks)
        return pipe

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> None:
        if not self._opened:
            if self.crops:
                self.crops.check_folder()
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
            events = self.tracker.finish(f.index if f else self.frames, time.time(), f.media_time if f else None)
            self._emit(events)
        except Exception:  # pragma: no cover - never lose the close path
            log.exception("finishing tracks")
        for sink in self.sinks:
            try:
                sink.flush()
            except Exception as e:
                log.warning("flushing sink %s: %s", sink.name, e)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as e:
                log.warning("closing sink %s: %s", sink.name, e)
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

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop ------------------------------------------------------------------------------
    def step(self, timeout: float = 1.0) -> Frame | None | bool:
        """Capture and process one frame. Returns the frame, ``None`` when a live source had no
        new frame within ``timeout``, ``False`` at the end of a finite source."""
        t0 = time.perf_counter()
        frame = self.source.read(timeout)
        self.times.add("capture", time.perf_counter() - t0)
        if frame is None:
            return False if self.source.finished or self.source.mode is not SourceMode.LIVE else None
        self.process(frame)
        return frame

    def failed_output(self) -> tuple[Sink, str] | None:
        """(sink, reason) for the first sink that has given up for good (its ``failed`` attribute:
        a full disk, a closed pipe; see :mod:`edge_fer.sinks.textfile`), else None. Cheap."""
        for sink in self.sinks:
            reason = sink.failed
            if reason:
                return sink, str(reason)
        return None

    def check_outcome(self) -> None:
        """After :meth:`close`: :class:`~edge_fer.errors.OutputError` when an output gave up (events
        were lost), :class:`~edge_fer.errors.SourceError` when a finite source (file, images) reached
        its end without yielding a single frame."""
        from edge_fer.errors import SourceError

        self.check_outputs()
        src = self.source
        if self._opened and self.frames == 0 and src.mode is not SourceMode.LIVE and src.finished:
            why = src.last_error
            raise SourceError(f"{src.name}: no frame could be read" + (f" ({why})" if why else ""))

    def check_outputs(self) -> None:
        """:class:`~edge_fer.errors.OutputError` when an output gave up (events were lost) or private
        outputs (crops, the annotated video) could not be written."""
        from edge_fer.errors import OutputError

        bad = self.failed_output()
        if bad is not None:
            sink, reason = bad
            try:
                dropped = int(sink.stats().dropped)
            except Exception:
                dropped = 0
            where = sink.where
            raise OutputError(f"output {where}: {reason}; {dropped} event(s) dropped")
        private = []
        if self.crops and self.crops.errors:
            private.append(
                f"--save-crops {self.crops.folder}: {self.crops.errors} crop(s) not written ({self.crops.last_error})"
            )
        ann = self.annotator
        if ann is not None and ann.errors:
            private.append(f"--annotate {ann.path}: {ann.last_error}")
        if private:
            raise OutputError("; ".join(private))

    def process(self, frame: Frame) -> list[Event]:
        """Detect, classify, track and emit for one frame (every stage timed)."""
        times = self.times
        pc = time.perf_counter
        detected = self.frames % self.detect_every == 0
        t = pc()
        # one gray conversion per frame, shared by a gray detector (Haar) and the crops
        gray = frame.gray if frame.gray is not None else to_gray(frame.image)
        if detected:
            faces: list[Face] = self.detector.detect(gray if self.detector.wants_gray else frame.image)
        else:
            faces = self.tracker.carried_faces()
        t1 = pc()
        times.add("detect", t1 - t)
        boxes = [f.box for f in faces]
        crop_boxes = [self.detector.crop_box(b) for b in boxes]  # each detector's framing (Detector.crop_box)
        batch = self.classifier.prepare(gray, crop_boxes)
        t2 = pc()
        times.add("preprocess", t2 - t1)
        preds: list[Prediction] = self.classifier.predict(batch) if boxes else []
        t3 = pc()
        times.add("classify", t3 - t2)
        quality = (
            self.quality.assess(batch, self.classifier.input_spec) if (self.quality is not None and boxes) else None
        )
        if quality:
            self.low_quality_faces += sum(q.low for q in quality)
        tq = pc()
        times.add("quality", tq - t3)
        t3 = tq
        events = self.tracker.update(
            faces, preds, frame.index, frame.ts, detected=detected, quality=quality, media_time=frame.media_time
        )
        if self.source.mode is SourceMode.STILL:  # each image is its own scene: its faces leave with it
            events += self.tracker.finish(frame.index, frame.ts)
            path = self.source.current_path
            if path is not None:
                for ev in events:
                    ev.extra["image"] = path_text(path)  # a name that is not UTF-8: \xNN escapes
        t4 = pc()
        times.add("track", t4 - t3)
        self._emit(events)
        times.add("sink", pc() - t4)

        self.frames += 1
        self.faces += len(faces)
        self.last_frame_ts = frame.ts
        self._last_frame = frame
        self.last_faces, self.last_predictions = faces, preds  # this frame's faces, as classified (analyze)
        self.fps_meter.tick()
        if self.annotate_path or self.crops:
            self._write_private_outputs(frame, gray, boxes, crop_boxes, preds)
        for observe in self.observers:
            try:
                observe(frame, self.tracker.tracks)
            except Exception as e:  # the live page must never end a run
                self.errors += 1
                log.warning("frame observer raised: %s", e)
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
                    log.warning("sink %s raised: %s", sink.name, e)
        for sink in self.sinks:
            try:
                sink.flush()
            except Exception as e:
                self.errors += 1
                log.warning("sink %s flush raised: %s", sink.name, e)

    def _write_private_outputs(
        self,
        frame: Frame,
        gray: np.ndarray,
        boxes: list[tuple[int, int, int, int]],
        crop_boxes: list[tuple[int, int, int, int]],
        preds: list[Prediction],
    ) -> None:
        """The annotated video (detector boxes) and the face crops (as classified), when asked (privacy:
        off by default)."""
        ids = list(self.tracker.last_assignment)
        if self.annotate_path:
            if self.annotator is None:
                self.annotator = Annotator(self.annotate_path, self.source.fps or 15.0, self.overwrite)
            by_id = {t.id: t for t in self.tracker.tracks}
            labels = []
            for tid, p in zip(ids, preds):
                tr = by_id.get(tid)
                labels.append(tr.label if tr is not None and tr.label else p.label)
            self.annotator.write(frame, boxes, ids, labels)
        if self.crops and boxes:
            self.crops.save(gray, crop_boxes, ids, frame.index, self.classifier)

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> PipelineStatus:
        """Runtime status (the HTTP sink's /metrics and /latest, systemd STATUS, logs)."""
        src = self.source.stats()
        sink_errors = sink_dropped = sink_queued = 0
        for s in self.sinks:
            try:
                st = s.stats()
                sink_errors += int(st.errors)
                sink_dropped += int(st.dropped)
                sink_queued += int(st.queued or 0)
            except Exception:
                pass
        crop_errors = (self.crops.errors if self.crops else 0) + (self.annotator.errors if self.annotator else 0)
        return PipelineStatus(
            fps=round(self.fps_meter.fps, 3),
            frames=self.frames,
            faces=self.faces,
            low_quality_faces=self.low_quality_faces,
            dropped_frames=int(src.get("dropped", 0)),
            bad_frames=int(src.get("bad_frames", 0)),
            dropped_events=sink_dropped,
            queued_events=sink_queued,
            errors=self.errors + crop_errors + int(src.get("errors", 0)) + sink_errors,
            tracks=self.tracker.active,
            uptime_s=round(time.monotonic() - self._t_start, 3),
            last_frame_ts=self.last_frame_ts,
            source=redact(self.source.name),  # /metrics, MQTT stats: no password
            model=self.model_name,
            detector=str(getattr(self.detector, "name", type(self.detector).__name__)),
            stages=self.times.summary(),
            source_connected=src.get("connected") if self.source.mode is SourceMode.LIVE else None,
        )
