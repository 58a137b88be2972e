"""`edge-fer run`: camera/video/images -> faces -> expressions -> JSON-line events.

The flags are derived from the run config's schema (:mod:`edge_fer.config`: each field's flag, help
and default); ``--config file.toml`` is the other view of it, and flags override the file. Heavy
imports (OpenCV, the interpreter) happen inside the command, never TensorFlow.
"""

from __future__ import annotations

from typing import Any

import typer

from edge_fer import schema


def register(app: typer.Typer) -> None:
    from edge_fer.config import SCHEMAS

    @schema.command(
        app, "run", SCHEMAS, help="Run the recognizer on a camera, stream, video or images; print JSON-line events."
    )
    def run_cmd(
        config: str | None = typer.Option(None, "--config", "-c", help="TOML config file; flags override it."),
        print_config: bool = typer.Option(False, "--print-config", help="Print the effective config as TOML and exit."),
        flags: dict[str, Any] | None = None,
    ) -> None:
        from edge_fer import config as cfgmod

        flags = flags or {}
        cfg = cfgmod.build(config, flags, as_flags=True)
        if print_config:
            typer.echo(cfgmod.to_toml(cfg, redact=True))  # secrets as ***: a printed config is often shared
            raise typer.Exit(0)
        cfgmod.require_source(cfg)  # the same refusal for a missing --source and a file without [source]
        from edge_fer.fsutil import refuse_output_over_inputs

        inputs = [config, cfg.source.uri, cfg.model.path, cfg.detector.model, cfg.quality.model]
        out = cfg.output
        for path, flag in ((out.path, "--output"), (out.annotate, "--annotate"), (out.save_crops, "--save-crops")):
            refuse_output_over_inputs(path or None, inputs, flag)
        from edge_fer.daemon import run_from_config

        code = run_from_config(cfg)
        if code:
            raise typer.Exit(code)
