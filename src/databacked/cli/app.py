"""The ``databacked`` command: a typer app whose commands live in small modules.

Every ``DatabackedError`` becomes one red sentence on stderr and exit code 2 (with the
traceback only under ``--debug``); Ctrl-C exits 130. Commands import heavy modules inside
their bodies so ``databacked --help`` stays fast.
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.main import get_command_name

from databacked.cli.common import err_console, show_library_log, wide_when_piped
from databacked.errors import DatabackedError
from databacked.secrets import install_log_filter, redact_text

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class _Group(TyperGroup):
    """Turns our errors into one sentence and an exit code, for every subcommand."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatabackedError as exc:
            if _debug(ctx):
                err_console.print(
                    redact_text("".join(traceback.format_exception(exc))),
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            # soft_wrap: one sentence stays one line, whatever the terminal width.
            message = redact_text(str(exc))
            err_console.print(f"[red]Error:[/red] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from exc
        except KeyboardInterrupt as exc:
            # a run stopped on SIGINT/SIGTERM says what it kept, and exits 130 / 143
            summary = getattr(exc, "summary", "Finished calls are recorded; run again to resume.")
            err_console.print(f"[yellow]Interrupted.[/yellow] {summary}", soft_wrap=True)
            raise typer.Exit(getattr(exc, "exit_code", EXIT_INTERRUPTED)) from exc


def _debug(ctx: typer.Context) -> bool:
    return bool((ctx.obj or {}).get("debug"))


app = typer.Typer(
    cls=_Group,
    name="databacked",
    help="Data-backed pipelines: run, inspect and tidy what your steps produced.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold credentials
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        from databacked import __version__

        typer.echo(f"databacked {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks for errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Data-backed pipelines: run, inspect and tidy what your steps produced."""
    ctx.obj = {"debug": debug}
    wide_when_piped()
    install_log_filter()
    show_library_log(ctx)


def _register() -> None:
    from databacked.cli import (
        browse,
        demo,
        export,
        hook,
        housekeeping,
        init,
        logs,
        running,
        specs,
        ui,
        worker,
    )  # fmt: skip

    running.register(app)
    browse.register(app)
    housekeeping.register(app)
    init.register(app)
    demo.register(app)
    specs.register(app)
    worker.register(app)
    ui.register(app)
    logs.register(app)
    export.register(app)
    hook.register(app)


_register()


def for_argv(argv: Sequence[str]) -> typer.Typer:
    """The app holding only the command ``argv`` names, so typer builds the options of one
    command rather than of all of them (a sixth of a no-op ``spec run``); the whole app when
    ``argv`` names none (help, an unknown name and its "did you mean")."""
    name = next((arg for arg in argv if not arg.startswith("-")), None)  # root options are flags
    commands = [
        c
        for c in app.registered_commands
        if (c.name or get_command_name(c.callback.__name__ if c.callback else "")) == name
    ]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    narrow = copy.copy(app)
    narrow.registered_commands, narrow.registered_groups = commands, groups
    return narrow
