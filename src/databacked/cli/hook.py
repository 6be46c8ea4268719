"""``databacked hook install|uninstall|run``: pipelines that run after ``datalad save``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from databacked.cli.common import console, settings

hook_app = typer.Typer(
    help="A git post-commit hook that runs the spec pipelines after new data is committed.",
    no_args_is_help=True,
)

DatasetArgument = Annotated[
    Path, typer.Argument(help="The DataLad dataset (default: the current folder).")
]
SpecsOption = Annotated[
    str, typer.Option("--specs", help="Folder of the spec pipelines, relative to the dataset.")
]


def register(app: typer.Typer) -> None:
    """Add the ``hook`` command group to the CLI application."""
    app.add_typer(hook_app, name="hook")


@hook_app.command("install")
def install(dataset: DatasetArgument = Path(), *, specs: SpecsOption = "pipelines") -> None:
    """Run the spec pipelines after each commit that touches their input repos."""
    from databacked.integrations import hook

    path = hook.install(dataset, specs=specs)
    console.print(f"Installed {path}; its log goes to {path.parent.parent / hook.LOG_NAME}")


@hook_app.command("uninstall")
def uninstall(dataset: DatasetArgument = Path()) -> None:
    """Remove the hook installed by `databacked hook install`."""
    from databacked.integrations import hook

    removed = hook.uninstall(dataset)
    console.print("Hook removed." if removed else "No databacked hook was installed.")


@hook_app.command("run", hidden=True)
def run(*, specs: SpecsOption = "pipelines") -> None:
    """What the hook calls, from the dataset root: run and save the pipelines if needed."""
    from databacked.integrations import hook

    raise typer.Exit(hook.main_run(specs, settings()))
