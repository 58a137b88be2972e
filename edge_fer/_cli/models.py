"""`edge-fer models`: fetch, list and remove the models edge-fer does not ship (the YuNet detector).

    edge-fer models pull yunet                       # pinned URL, pinned SHA-256, into the user's cache
    edge-fer models pull yunet --from FILE           # offline: install a copy (same SHA-256 check)
    edge-fer models list
    edge-fer models remove yunet

Nothing is downloaded unless ``pull`` is run. ``--url`` takes a mirror, ``--sha256`` a hash you
trust by other means, ``--no-verify`` skips the check (the hash is printed either way).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    models = typer.Typer(
        help="Fetch, list and remove optional models (the YuNet face detector).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    @models.command(
        "pull",
        help="Download a model from its pinned URL (or copy --from FILE), check its SHA-256, store it in the user's cache.",
    )
    def pull_cmd(
        name: str = typer.Argument(..., help="Model name: yunet."),
        from_file: Path | None = typer.Option(
            None, "--from", help="Install from this local file instead of downloading (offline machines)."
        ),
        url: str | None = typer.Option(
            None,
            "--url",
            help="Download from this http(s) URL (a mirror) instead of the pinned ones; a user:password@ in it "
            "is sent as basic authentication and never shown.",
        ),
        sha256: str | None = typer.Option(None, "--sha256", help="Expect this SHA-256 instead of the pinned one."),
        no_verify: bool = typer.Option(
            False, "--no-verify", help="Install whatever the bytes are (not recommended); the hash is printed."
        ),
        force: bool = typer.Option(False, "--force", help="Fetch again even when a good copy is installed."),
        timeout: float = typer.Option(
            30.0,
            "--timeout",
            help="Seconds the whole download from one URL may take (each read too): more than 0, at most 86400.",
        ),
    ) -> None:
        from edge_fer import models_store
        from edge_fer.errors import ConfigError
        from edge_fer.redact import redact

        if from_file is not None and url is not None:
            raise ConfigError("give --from FILE or --url URL, not both")
        models_store.check_timeout(timeout)  # nan, inf, 0, negative: one line naming --timeout
        if url is not None:
            models_store.check_url(url)  # before any network use; its password is hidden from now on
        s = models_store.spec(name)
        if from_file is None and sys.stderr.isatty():
            typer.echo(f"fetching {s.filename} from {redact(url or s.urls[0])}", err=True)
        path, digest, fetched = models_store.pull(
            name, from_file=from_file, url=url, sha256=sha256, verify=not no_verify, force=force, timeout=timeout
        )
        how = "downloaded" if fetched else ("copied" if from_file else "already installed")
        check = "not checked (--no-verify)" if no_verify else "ok"
        typer.echo(f"{name}: {how}: {path} (sha256 {digest}, {check})")

    @models.command("list", help="Known models, where they are installed, their pinned SHA-256.")
    def list_cmd(
        json_path: str | None = typer.Option(
            None, "--json", help="Write the list as JSON here ('-': stdout, no table)."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No table on stdout (use with --json PATH)."),
    ) -> None:
        from edge_fer import jsondoc, models_store

        rows = models_store.describe()
        jsondoc.write(json_path, jsondoc.document("models", {"cache": models_store.models_dir(), "models": rows}))
        if quiet or jsondoc.to_stdout(json_path):
            return
        typer.echo(f"cache: {models_store.models_dir()}")
        for row in rows:
            where = str(row["installed"] or "not installed ('edge-fer models pull " + str(row["name"]) + "')")
            if row["installed"] and row["installed_sha256"] != row["sha256"]:
                where += (
                    f"\n         its SHA-256 {str(row['installed_sha256'])[:16]}... is not the pinned one: damaged, "
                    "or a build pulled with --sha256 ('edge-fer doctor' says whether it loads)"
                )
            typer.echo(
                f"{row['name']:8} {where}\n         {row['description']}; sha256 {row['sha256']} ({row['source']})"
            )

    @models.command("remove", help="Delete an installed model from the cache.")
    def remove_cmd(name: str = typer.Argument(..., help="Model name: yunet.")) -> None:
        from edge_fer import models_store

        p = models_store.remove(name)
        print(f"{name}: removed {p}" if p else f"{name}: not installed", file=sys.stdout)

    app.add_typer(models, name="models")
