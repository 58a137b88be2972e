"""`edge-fer bench`: placeholder until its issue lands."""

import typer


def register(app: typer.Typer) -> None:
    @app.command("bench", help="(not implemented yet)")
    def _cmd() -> None:
        raise typer.Exit(1)
