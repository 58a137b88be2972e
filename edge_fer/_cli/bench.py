"""`edge-fer bench`: per-stage latency of the real pipeline, the classifier alone, a real-time budget.

    edge-fer bench --source video.mp4 --json bench.json [--plot bench.png] [--target-fps 30 [--fail-under]]
    edge-fer bench --source video.mp4 --repeat 3 --json - -q    # the JSON report on stdout
    edge-fer bench --model-only --model a.tflite --model b.tflite --threads 1,2
    edge-fer bench --source video.mp4 --compare fer        # needs the `fer` package (edge_fer/bench/compare_fer.py)

The pipeline flags mirror `edge-fer run` (the same config keys; ``--config`` reads the same TOML file).
Events go to ``os.devnull`` unless ``--events PATH``: the sink stage is still timed. Exit codes: 0, 1
when ``--fail-under`` is given and the budget verdict is FAIL, 2 for bad input, 74 when the report or
the plot cannot be written. ``--loop N`` is the deprecated spelling of ``--repeat N`` (``run --loop``
is a switch).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import typer

from edge_fer import jsondoc, schema
from edge_fer.config import DETECTOR_KEYS

if TYPE_CHECKING:
    from edge_fer.bench import ModelsReport, PipelineReport

# the pipeline flags `edge-fer bench` shares with `edge-fer run`: their spelling, help and defaults
# come from the run config's schema (edge_fer.config)
PIPELINE_KEYS = (
    *DETECTOR_KEYS,
    "model.device",
    "source.width",
    "source.height",
)


def register(app: typer.Typer) -> None:
    from edge_fer.config import SCHEMAS

    schema.rename("bench", "--loop", "--repeat")  # `run --loop` is a switch; this is a count

    @schema.command(
        app,
        "bench",
        SCHEMAS,
        keys=PIPELINE_KEYS,
        help="Benchmark latency: every pipeline stage per frame (p50/p90/p99), or the classifier alone (--model-only). "
        "Exit 1 when --fail-under fails, 2 on bad input, 74 when an output cannot be written.",
    )
    def bench_cmd(
        source: str | None = typer.Option(
            None, "--source", "-s", help="Video file, images, camera index, URL or 'picamera2' (pipeline mode)."
        ),
        json_path: str | None = typer.Option(
            None, "--json", help="Write every figure to this JSON report ('-': stdout, no table)."
        ),
        plot_path: str | None = typer.Option(
            None, "--plot", help="Write a latency-distribution plot (PNG; needs the 'plot' extra)."
        ),
        model: list[str] | None = typer.Option(
            None, "--model", "-m", help="Model bundle (.tflite); repeat with --model-only to compare several."
        ),
        config: str | None = typer.Option(
            None, "--config", "-c", help="The TOML config of 'edge-fer run'; flags override it."
        ),
        threads: str | None = typer.Option(
            None, "--threads", help="Interpreter threads (0: default); with --model-only a list such as 1,2."
        ),
        max_frames: int = typer.Option(
            0, "--max-frames", help="Measure at most N frames after warm-up (0: the whole source; 300 for a camera)."
        ),
        repeat: int = typer.Option(
            1, "--repeat", help="Play a finite source N times (a short video makes a longer run)."
        ),
        warmup: int = typer.Option(
            10, "--warmup", help="Warm-up frames (or runs with --model-only), run but left out of the figures."
        ),
        events: str | None = typer.Option(
            None, "--events", help="Write the events here (default: discarded; the sink is timed either way)."
        ),
        model_only: bool = typer.Option(
            False,
            "--model-only",
            help="Time the classifier alone (init, first inference, N runs) for each --model and --threads.",
        ),
        runs: int = typer.Option(200, "--runs", help="Timed runs per model and thread count (--model-only)."),
        batch: int = typer.Option(1, "--batch", help="Faces per inference (--model-only)."),
        target_fps: float | None = typer.Option(
            None, "--target-fps", help="Real-time target: PASS/FAIL per stage and overall, with the headroom."
        ),
        budget_ms: float | None = typer.Option(
            None, "--budget-ms", help="Latency budget per frame in ms (instead of --target-fps)."
        ),
        budget_percentile: str = typer.Option(
            "p99", "--budget-percentile", help="Judge the budget at p50 | p90 | p99 | max."
        ),
        fail_under: bool = typer.Option(
            False, "--fail-under", help="Exit 1 when the budget verdict is FAIL (needs --target-fps or --budget-ms)."
        ),
        compare: str | None = typer.Option(
            None, "--compare", help="Also run a peer side by side on the same frames: 'fer'."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No table on stdout (use with --json PATH)."),
        flags: dict[str, Any] | None = None,
    ) -> None:
        from edge_fer import bench
        from edge_fer.errors import ConfigError

        flags = flags or {}
        device = flags.get("model.device")
        from edge_fer.fsutil import refuse_output_over_inputs

        inputs = [source, config, *(model or []), flags.get("detector.model"), flags.get("quality.model")]
        for out_path, flag in ((json_path, "--json"), (plot_path, "--plot"), (events, "--events")):
            refuse_output_over_inputs(out_path, inputs, flag)

        if plot_path:  # a missing extra is found before the measuring, not after it
            from edge_fer.errors import MissingExtraError

            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise MissingExtraError("--plot", "plot", "matplotlib") from None
        budget = bench.budget_ms_from(target_fps, budget_ms)
        if fail_under and budget is None:
            raise ConfigError("--fail-under needs --target-fps or --budget-ms")
        if budget_percentile not in bench.BUDGET_PERCENTILES:
            raise ConfigError(
                f"--budget-percentile must be one of {', '.join(bench.BUDGET_PERCENTILES)}, got {budget_percentile!r}"
            )
        # an unknown or missing peer is one clear error before anything runs
        peer = bench.load_peer(compare) if compare is not None else None
        thread_list = bench.parse_threads(threads)
        models = list(model or [])

        if model_only:
            if compare:
                raise ConfigError("--compare runs the whole pipeline; it does not go with --model-only")
            mrep = bench.bench_models(
                models,
                threads=thread_list,
                device=device or "auto",
                runs=runs,
                warmup=warmup,
                batch=batch,
                keep_samples=bool(plot_path),
            )
            if budget is not None:
                mrep.budget = bench.evaluate_model_budget(mrep, budget, budget_percentile)
            text = bench.format_models(mrep)
            rep: ModelsReport | PipelineReport = mrep
        else:
            from edge_fer import config as cfgmod

            if len(models) > 1:
                raise ConfigError("the pipeline benchmark takes one --model; use --model-only to compare several")
            if len(thread_list) > 1:
                raise ConfigError("the pipeline benchmark takes one --threads value; use --model-only for a list")
            overrides: dict[str, Any] = {**flags, "source.uri": source}
            overrides["model.path"] = models[0] if models else None
            overrides["model.threads"] = thread_list[0] if threads is not None else None
            overrides["output.path"] = events or os.devnull
            cfg = cfgmod.build(config, overrides, as_flags=True)
            try:
                cfgmod.require_source(cfg)
            except ConfigError as e:
                raise ConfigError(f"{e}; or use --model-only") from None
            prep = bench.bench_pipeline(
                cfg, warmup=warmup, max_frames=max_frames, loops=repeat, keep_samples=bool(plot_path)
            )
            if budget is not None:
                prep.budget = bench.evaluate_budget(prep, budget, budget_percentile)
            text = bench.format_pipeline(prep)
            if peer is not None:
                prep.compare = peer.compare(cfg, max_frames=max_frames, warmup=min(warmup, 5), loops=repeat)
                text += "\n\n" + peer.format_compare(prep.compare)
            rep = prep

        if json_path:
            bench.write_json(rep, json_path)
        if plot_path:
            bench.plot(rep, plot_path)
        if not (quiet or jsondoc.to_stdout(json_path)):
            typer.echo(text)
        if fail_under and rep.budget and not rep.budget.passed:
            # SystemExit, not typer.Exit: cli.main() runs click with standalone_mode=False, which
            # turns typer.Exit(1) into a return value that main() does not pass on
            raise SystemExit(1)
