"""``databacked export rocrate``: files and their provenance as a publishable RO-Crate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from databacked.cli.common import (
    CatalogOption,
    StoreOption,
    console,
    open_catalog,
    open_store,
    settings,
)

export_app = typer.Typer(
    help="Write what the catalog knows in a publication format.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the ``export`` command group to the CLI application."""
    app.add_typer(export_app, name="export")


@export_app.command("rocrate")
def rocrate(
    out: Annotated[
        Path, typer.Argument(help="The crate folder to write (or zip file with --zip).")
    ],
    targets: Annotated[
        list[str] | None,
        typer.Argument(help="Store paths whose lineage to export (default: a whole run)."),
    ] = None,
    *,
    run: Annotated[
        str | None, typer.Option("--run", help="Run id (or prefix) to export (default: latest).")
    ] = None,
    no_data: Annotated[
        bool, typer.Option("--no-data", help="Describe the files without copying them.")
    ] = False,
    zip_: Annotated[bool, typer.Option("--zip", help="Write one .zip file.")] = False,
    license: Annotated[
        str | None,
        typer.Option("--license", help="License URL or SPDX id of the crate's content."),
    ] = None,
    store: StoreOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Write a Workflow Run RO-Crate (Provenance Run Crate): files, calls, code and versions."""
    from databacked.integrations.rocrate import export_rocrate

    config = settings(store=store, catalog=catalog)
    the_store = open_store(config)
    with open_catalog(config, create=False) as cat:
        report = export_rocrate(
            out,
            cat,
            store=the_store,
            run_id=run,
            targets=targets or (),
            data=not no_data,
            zip=zip_,
            license=license,
        )
    console.print(
        f"RO-Crate: {report.actions} calls, {report.files} files -> {report.path}", highlight=False
    )
    for label, paths in (("changed since recorded", report.changed), ("missing", report.missing)):
        if paths:
            console.print(f"[yellow]{len(paths)} files {label}[/yellow] (described, not copied)")
