"""``verify``, ``gc`` and ``forget``: thin wrappers over engine.housekeeping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from databacked.cli.common import (
    CatalogOption,
    StoreOption,
    console,
    did_you_mean,
    open_catalog,
    open_store,
    settings,
)
from databacked.errors import ConfigError
from databacked.units import human_size

if TYPE_CHECKING:
    from databacked.catalog import Catalog


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.command("gc")(gc)
    app.command("forget")(forget)


def verify(
    prefix: Annotated[str, typer.Argument(help="Only artifacts under this path.")] = "",
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Undo folder writes a kill interrupted, and forget the calls of corrupt or "
            "missing outputs so the next run recomputes them.",
        ),
    ] = False,
    store: StoreOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Re-hash every artifact the catalog knows; report corrupt and missing ones (exit 1)."""
    from databacked.engine import housekeeping

    config = settings(store=store, catalog=catalog)
    the_store = open_store(config)
    with open_catalog(config, create=False) as cat, console.status("Re-hashing artifacts..."):
        report = housekeeping.verify(the_store, cat, prefix=prefix, repair=repair)
    for line in report.repaired:
        console.print(f"[cyan]repaired[/cyan] {line}", highlight=False)
    for path in report.corrupt:
        console.print(f"[red]corrupt[/red]  {path}", highlight=False)
    for path in report.missing:
        console.print(f"[yellow]missing[/yellow]  {path}", highlight=False)
    if report.ok:
        console.print(f"[green]All {report.checked} artifacts match their recorded hashes.[/green]")
        return
    console.print(
        f"{report.checked} artifacts checked: {len(report.corrupt)} corrupt, "
        f"{len(report.missing)} missing. Their calls run again on the next run"
        + (" (their cache entries are forgotten)." if repair else "; --repair forgets them.")
    )
    raise typer.Exit(1)


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be removed.")
    ] = False,
    everywhere: Annotated[
        bool,
        typer.Option(
            "--everywhere",
            help="Also remove unreferenced files outside .databacked/objects/ "
            "(including inputs the catalog never recorded).",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    store: StoreOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Remove stored objects no catalog row references, logs of calls it no longer holds, and
    staging leftovers of killed runs."""
    from databacked.engine import housekeeping

    config = settings(store=store, catalog=catalog)
    the_store = open_store(config)
    with open_catalog(config, create=False) as cat:
        if everywhere and not dry_run and not yes:
            preview = housekeeping.gc(the_store, cat, dry_run=True, everywhere=True)
            if preview.removed and not typer.confirm(
                f"Remove {len(preview.removed)} unreferenced files "
                f"({human_size(preview.bytes_freed)}) anywhere in {the_store.url}?"
            ):
                raise typer.Exit(1)
        report = housekeeping.gc(the_store, cat, dry_run=dry_run, everywhere=everywhere)
        referenced = len(cat.referenced_paths(the_store.url))
    verb = "would remove" if dry_run else "removed"
    for path in report.removed:
        console.print(f"{verb}  {path}  [dim]({report.details.get(path, '')})[/dim]")
    console.print(gc_summary(report, referenced, everywhere), highlight=False, soft_wrap=True)


def gc_summary(report: Any, referenced: int, everywhere: bool) -> str:
    """One honest sentence: what goes (or would), where gc looked, what the catalog keeps."""
    logs = report.logs
    n = len(report.removed) - logs
    where = "anywhere in the store" if everywhere else "in .databacked/objects/"
    parts = []
    if n:
        size = human_size(report.bytes_freed - report.log_bytes)
        parts.append(f"{n} unreferenced {_files(n)} ({size}) {where}")
    if logs:
        noun = "log" if logs == 1 else "logs"
        size = human_size(report.log_bytes)
        parts.append(f"{logs} call {noun} ({size}) of calls the catalog no longer holds")
    if parts:
        done = ("Would remove " if report.dry_run else "Removed ") + " and ".join(parts)
    else:
        done = f"Nothing unreferenced to remove {where}"
    outside = "" if everywhere else "; files outside it are removed only with --everywhere"
    return (
        f"{done}; the catalog references {referenced} {_files(referenced)} in this store, "
        f"{report.kept} of them looked at and kept{outside}."
    )


def _files(n: int) -> str:
    return "file" if n == 1 else "files"


def forget(
    step: Annotated[
        str | None, typer.Argument(help="Forget every cached call of this step.")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="A call key (or its prefix).")] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Calls recorded longer ago, e.g. 7d, 12h.")
    ] = None,
    catalog: CatalogOption = None,
) -> None:
    """Drop cache entries so those calls compute again (their files stay until gc)."""
    from databacked.engine import housekeeping

    housekeeping.check_forget_filters(step, key, older_than)
    config = settings(catalog=catalog)
    with open_catalog(config, create=False) as cat:
        count = housekeeping.forget(cat, step=step, key=key, older_than=older_than)
        if count == 0 and step is not None:
            _check_step_name(cat, step)
    console.print(f"Forgot {count} cached call{'s' if count != 1 else ''}.")


def known_steps(cat: Catalog, runs: int = 50) -> set[str]:
    """Step names of recent runs (their summaries count cached calls too)."""
    names: set[str] = set()
    for run in cat.runs(limit=runs):
        steps = (run.summary or {}).get("steps")
        if isinstance(steps, dict):
            names.update(str(s) for s in steps)
        else:
            names.update(c.step for c in cat.calls_of_run(run.id))
    return names


def _check_step_name(cat: Catalog, step: str) -> None:
    """A step name no recent run knows is a typo until shown otherwise: say so, exit 2."""
    known = known_steps(cat)
    if step in known:
        return
    names = ", ".join(sorted(known)) or "none recorded yet"
    raise ConfigError(
        f"No step {step!r} in the catalog{did_you_mean(step, sorted(known))}; known steps: "
        f"{names}. Nothing was forgotten."
    )
