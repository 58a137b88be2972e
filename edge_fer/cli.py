"""The ``edge-fer`` command: one typer app with train | convert | run | bench.

Each command lives in its own module under ``edge_fer/_cli`` and imports its heavy dependencies
(TensorFlow for train/convert, OpenCV and the interpreter for run/bench) inside the command body,
so ``edge-fer --help`` is fast and the runtime never imports TensorFlow.

User mistakes (:class:`edge_fer.errors.EdgeFerError`) become one line on stderr and exit code 2;
a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from edge_fer import __version__
from edge_fer.errors import EdgeFerError

app = typer.Typer(
    name="edge-fer",
    help="Facial-expression recognition: train, convert to int8 TFLite, run on a Pi or Coral, bench.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edge-fer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug-level logging."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    _state["debug"] = debug or bool(os.environ.get("EDGE_FER_DEBUG"))
    level = logging.DEBUG if (debug or verbose) else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _register() -> None:
    from edge_fer._cli import bench, convert, run, train

    for mod in (train, convert, run, bench):
        mod.register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(os.environ.get("EDGE_FER_DEBUG"))
    try:
        # without standalone mode click returns typer.Exit(n)'s code instead of exiting
        rv = app(args=argv, standalone_mode=False)
    except EdgeFerError as e:
        if debug:
            raise
        print(f"edge-fer: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edge-fer: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # typer.Exit / click exits
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            print("edge-fer: aborted", file=sys.stderr)
            return 1
        raise
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
