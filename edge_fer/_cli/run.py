"""`edge-fer run`: placeholder until its issue lands."""

import typer


def register(app: typer.Typer) -> None:
    @app.command("run", help="(not implemented yet)")
    def _cmd() -> None:
        raise typer.Exit(1)
