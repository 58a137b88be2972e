"""`edge-fer analyze`: recordings -> per video a timeline, a track table, a summary and a plot.

    edge-fer analyze clip.mp4 interviews/ 'day*/*.mp4' -o results/ [--workers 2] [--every 2]

The detector and model flags are those of `edge-fer run` (the same config schema); exit 0 when every
video was analysed (or already was), 1 when any failed, 2 for bad input (nothing written then).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from edge_fer import schema
from edge_fer.config import DETECTOR_KEYS

# the flags `edge-fer analyze` shares with `edge-fer run`: their spelling, help and defaults come from
# the run config's schema (edge_fer.config)
PIPELINE_KEYS = (
    "model.path",
    "model.device",
    *DETECTOR_KEYS,
    "quality.enabled",
    "quality.model",
    "quality.threshold",
)


def register(app: typer.Typer) -> None:
    from edge_fer.config import SCHEMAS

    # `run --annotate PATH` takes a file; this switch was spelled the same
    schema.rename("analyze", "--annotate/--no-annotate", "--write-annotated/--no-write-annotated")
    schema.rename("analyze", "--out", "--output", warn=False)  # the spelling train/convert/adapt also accept

    @schema.command(
        app,
        "analyze",
        SCHEMAS,
        keys=PIPELINE_KEYS,
        help="Analyse video files: per video a timeline CSV, a track table, summary.json and an emotions plot.",
    )
    def analyze_cmd(
        inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Video files, folders (searched) or globs."),
        output: str = typer.Option(..., "--output", "-o", help="Folder for the results (one sub-folder per video)."),
        workers: int = typer.Option(
            0, "--workers", "-j", help="Videos analysed at once, one single-threaded process each (0: one per core)."
        ),
        every: int = typer.Option(
            1, "--every", help="Analyse every K-th frame; the tracker carries faces across the frames between."
        ),
        max_seconds: float = typer.Option(
            0.0, "--max-seconds", help="Analyse only the first S seconds of each video (0: all of it)."
        ),
        annotate: bool = typer.Option(
            False,
            "--write-annotated/--no-write-annotated",
            help="Also write annotated.mp4 per video (off by default: privacy).",
        ),
        json_path: str | None = typer.Option(
            None, "--json", help="Also write the run's index as JSON here ('-': stdout)."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No table on stdout."),
        flags: dict[str, Any] | None = None,
    ) -> None:
        from edge_fer import analyze, jsondoc
        from edge_fer import config as cfgmod
        from edge_fer.errors import ConfigError

        if every < 1:
            raise ConfigError(f"--every must be >= 1, got {every}")
        if max_seconds < 0 or max_seconds != max_seconds:
            raise ConfigError(f"--max-seconds must be >= 0, got {max_seconds}")
        if workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {workers}")
        cfg = cfgmod.build(None, flags or {})
        from edge_fer.classify import Classifier
        from edge_fer.detect import build_detector
        from edge_fer.interpreter import usable_cores

        # a model or detector that cannot be used is one line, exit 2, before anything is written
        Classifier.from_file(cfg.model.path or None, device=cfg.model.device, threads=1)
        build_detector(cfg.detector)
        videos = analyze.find_videos(inputs)
        _check_json_path(json_path, [*videos, *(p for p in inputs if Path(p).is_dir())])
        out = analyze.prepare_output(output, inputs, videos)
        jobs = [(v, out / name) for v, name in zip(videos, analyze.output_names(videos))]
        n_workers = min(workers or usable_cores(), len(jobs))
        opts = analyze.Options(every=every, max_seconds=max_seconds, annotate=annotate)
        extra = {"output": str(out), "workers": n_workers}
        # the index is rewritten (atomically) after every video, so a run that is stopped part-way still
        # says which videos are done; the ones not finished yet are "pending"
        so_far = {str(v): {"video": str(v), "output": str(f), "status": "pending"} for v, f in jobs}

        def finished(row: dict[str, Any]) -> None:
            _log_done(row)
            so_far[row["video"]] = row
            analyze.write_index(out, list(so_far.values()), {**extra, "complete": False})

        rows = _run_with_progress(jobs, cfg, opts, n_workers, finished)
        doc = analyze.write_index(out, rows, {**extra, "complete": True})
        if json_path:
            jsondoc.write(json_path, doc, mkdir=True)
        if not quiet and json_path != "-":
            typer.echo(_table(rows))
        if any(r["status"] == "failed" for r in rows):
            # SystemExit, not typer.Exit: cli.main() runs click with standalone_mode=False
            raise SystemExit(1)


def _check_json_path(json_path: str | None, inputs: list[Any]) -> None:
    """``--json`` before anything is analysed: never one of the videos (exit 2); its folder is created
    as eval, doctor and bench create theirs, and one that cannot be is exit 74 now, not after the batch."""
    if not json_path or json_path == "-":
        return
    from edge_fer.errors import OutputError
    from edge_fer.fsutil import refuse_output_over_inputs

    refuse_output_over_inputs(json_path, inputs, "--json")
    folder = Path(json_path).expanduser().absolute().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot write --json {json_path}: {e.strerror or e}") from None


def _run_with_progress(
    jobs: list, cfg: Any, opts: Any, workers: int, done: Callable[[dict[str, Any]], None]
) -> list[dict[str, Any]]:
    """Run the jobs with a progress bar over the frames of all videos (on a terminal only)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edge_fer import analyze

    on_tty = sys.stderr.isatty()
    total = sum(analyze.frame_count(v, opts.max_seconds) for v, _ in jobs) if on_tty else None
    with Progress(
        TextColumn("analyze"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeRemainingColumn(),
        disable=not on_tty,
        transient=False,
    ) as bar:
        task = bar.add_task("frames", total=total or None)
        return analyze.analyze_all(jobs, cfg, opts, workers, progress=lambda n: bar.advance(task, n), done=done)


def _log_done(row: dict[str, Any]) -> None:
    import logging

    log = logging.getLogger("edge_fer.analyze")
    if row["status"] == "failed":
        log.warning("%s: failed: %s", row["video"], row.get("error"))
    else:
        log.info("%s: %s -> %s", row["video"], row["status"], row["output"])


def _table(rows: list[dict[str, Any]]) -> str:
    """One row a video (a name with a line break stays on its row: control characters escaped)."""
    from edge_fer.bench.text import printable

    head = f"{'status':<8} {'duration_s':>10} {'tracks':>6} {'dominant':<9} {'x real time':>11}  video"
    lines = [head]
    for r in rows:
        dur = r.get("duration_s")
        rtf = r.get("realtime_factor")
        lines.append(
            f"{r['status']:<8} {'' if dur is None else f'{dur:.1f}':>10} {r.get('tracks') or 0:>6} "
            f"{r.get('dominant_label') or '-':<9} {'' if rtf is None else f'{rtf:.1f}':>11}  {printable(r['video'])}"
            + (f"  ({printable(r['error'])})" if r.get("error") else "")
        )
    return "\n".join(lines)
