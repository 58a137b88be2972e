"""`edge-fer doctor`: can this machine run edge-fer? Each check runs in a child process.

    edge-fer doctor                       # table: check, result, detail, and the fix for each failure
    edge-fer doctor --json report.json    # also every figure as JSON ('-': JSON on stdout, no table)
    edge-fer doctor --json - -q           # only the JSON
    edge-fer doctor --video clip.mp4      # decode this file instead of a generated clip

Exit codes: 0 (verdict OK or WARN), 1 (verdict FAIL: the default `edge-fer run` cannot work here),
2 (bad input), 74 (the report cannot be written). A full probe on the shipped model also refreshes the backend choice that
`edge-fer run` caches at start-up.
"""

from __future__ import annotations

import typer

from edge_fer import jsondoc


def register(app: typer.Typer) -> None:
    @app.command(
        "doctor",
        help="Check this machine: every interpreter backend on the shipped model, the Edge TPU "
        "delegate, OpenCV video decoding and the cameras, each in a child process (a crash "
        "becomes a row); prints a verdict and the fix for each failure.",
    )
    def doctor_cmd(
        model: str | None = typer.Option(None, "--model", "-m", help="Probe this model instead of the shipped one."),
        video: str | None = typer.Option(None, "--video", help="Decode this video file (default: a generated clip)."),
        backend: list[str] | None = typer.Option(
            None, "--backend", help="Probe only this interpreter backend (repeatable)."
        ),
        camera: bool = typer.Option(True, "--camera/--no-camera", help="Probe the V4L2 cameras and picamera2."),
        json_path: str | None = typer.Option(
            None, "--json", help="Write the report as JSON here ('-': stdout, no table)."
        ),
        timeout: float = typer.Option(60.0, "--timeout", help="Seconds each child process may take."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No table on stdout (use with --json PATH)."),
    ) -> None:
        from edge_fer import doctor
        from edge_fer.fsutil import refuse_output_over_inputs

        refuse_output_over_inputs(json_path, [model, video], "--json")
        rep = doctor.run_doctor(model=model, video=video, backends=list(backend or []), camera=camera, timeout=timeout)
        if not (quiet or jsondoc.to_stdout(json_path)):
            typer.echo(doctor.format_report(rep))
        jsondoc.write(json_path, jsondoc.document("doctor", rep.to_dict()), mkdir=True)
        raise typer.Exit(rep.exit_code)
