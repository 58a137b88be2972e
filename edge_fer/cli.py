"""The ``edge-fer`` command: one typer app with train | convert | run | bench | eval | doctor | adapt | models.

Each command lives in its own module under ``edge_fer/_cli`` and imports its heavy dependencies
(TensorFlow for train/convert, OpenCV and the interpreter for run/bench) inside the command body,
so ``edge-fer --help`` is fast and the runtime never imports TensorFlow.

Every error becomes one line on stderr and the exit code of the table in :mod:`edge_fer.errors`
(2 for a user mistake, :class:`edge_fer.errors.EdgeFerError`; 70 for a bug); a traceback is shown
only with ``--debug``. Old flag spellings are translated first (:func:`edge_fer.schema.translate_argv`).
Bare ``edge-fer`` (and a command group without its subcommand, ``edge-fer models``) prints the help
on stdout and exits 0.
"""

from __future__ import annotations

import logging
import os
import sys

from edge_fer.fsutil import ensure_std_fds

ensure_std_fds()  # before anything is opened: fds 0-2 never end up being the events file or a model

import typer  # noqa: E402

from edge_fer import __version__  # noqa: E402
from edge_fer.errors import EXIT_INTERNAL, EXIT_IOERR, EXIT_OK, OUTPUT_ERRNOS, EdgeFerError  # noqa: E402

app = typer.Typer(
    name="edge-fer",
    help="Facial-expression recognition: train, convert to int8 TFLite, run on a Pi or Coral, bench.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain text: "edge-fer[mqtt]" stays as written
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
    from edge_fer.redact import install_log_redaction

    install_log_redaction()  # no password (camera URL, MQTT) in any log line


def _register() -> None:
    from edge_fer._cli import adapt, analyze, bench, convert, doctor, eval, run, train

    for mod in (train, convert, run, analyze, bench, eval, doctor, adapt):
        mod.register(app)
    from edge_fer._cli import models  # edge-fer models pull|list|remove

    models.register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: returns the exit code; a user mistake is one line and code 2,
    an unexpected exception one line and code 70."""
    from edge_fer.schema import translate_argv

    args = translate_argv(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("EDGE_FER_DEBUG"))
    try:
        # without standalone mode the parser returns typer.Exit(n)'s code instead of exiting
        rv = app(args=args, prog_name="edge-fer", standalone_mode=False)
    except EdgeFerError as e:
        if debug:
            raise
        print(f"edge-fer: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edge-fer: interrupted", file=sys.stderr)
        return 130
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        print("edge-fer: aborted", file=sys.stderr)
        return 1
    except typer.TyperException as e:  # usage errors: unknown option or command, bad value
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:  # bare `edge-fer`, `edge-fer models`
            typer.echo(ctx.get_help())
            return EXIT_OK
        if debug:
            raise
        path = getattr(ctx, "command_path", "") or "edge-fer"
        print(f"edge-fer: error: {e.format_message()} (see '{path} --help')", file=sys.stderr)
        return int(getattr(e, "exit_code", 2) or 2)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except OSError as e:  # a file or device the user named: one line, not a traceback
        if debug:
            raise
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        if e.errno in OUTPUT_ERRNOS:  # a full disk, a closed pipe: the output's fault, not the input's
            # a write error that names no file: the commands write their files through edge_fer.fsutil
            # (named errors), so this is stdout
            print(f"edge-fer: error:{where or ' cannot write to stdout'}: {e.strerror or e}", file=sys.stderr)
            return EXIT_IOERR
        print(f"edge-fer: error:{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if debug:
            raise
        # Path.resolve() on a loop of symbolic links the user named (Python 3.11 raises RuntimeError)
        if str(e).startswith("Symlink loop from "):
            print(f"edge-fer: error: {str(e)[len('Symlink loop from ') :]}: a loop of symbolic links", file=sys.stderr)
            return 2
        return _internal_error(e)
    except Exception as e:  # a bug, not the user's input: one line, its own code (EX_SOFTWARE)
        if debug:
            raise
        return _internal_error(e)
    code = rv if isinstance(rv, int) else 0
    if code == 130:  # typer turns Ctrl-C inside a command into this code, silently
        print("edge-fer: interrupted", file=sys.stderr)
    try:  # what is still buffered for stdout: a full disk or a closed pipe is an output error
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as e:
        _quiet_stdout()
        print(f"edge-fer: error: cannot write to stdout: {e.strerror or e}", file=sys.stderr)
        return EXIT_IOERR
    return code


def _internal_error(e: BaseException) -> int:
    """One line for a bug (its type and first line, secrets hidden) and exit 70 (EX_SOFTWARE)."""
    from edge_fer.redact import redact

    what = redact(str(e)).splitlines()[0] if str(e) else ""
    print(
        f"edge-fer: internal error: {type(e).__name__}{': ' + what if what else ''} "
        "(a bug; rerun with --debug for the traceback and report it)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
