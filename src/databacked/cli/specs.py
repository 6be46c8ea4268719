"""Declarative pipelines on the command line: ``watch`` and ``spec schema|check|run|plan``.

``databacked watch pipelines/`` runs the specs now and again whenever their input repos
change, until Ctrl-C or SIGTERM (which let the current run finish: exit 0). The ``spec``
group validates specs, prints their JSON Schema, and runs or plans them once.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from databacked.cli.common import (
    CatalogOption,
    StoreOption,
    console,
    err_console,
    open_catalog,
    open_store,
    settings,
    short,
)
from databacked.cli.progress import one_line
from databacked.cli.running import GraceOption, ResourcesOption, parse_resources

SpecsArgument = Annotated[
    Path,
    typer.Argument(
        metavar="PIPELINES",
        help="A folder of *.yml specs (or a project with pipelines/), or one file.",
    ),
]
ExecutorOption = Annotated[
    str | None, typer.Option(help="inline, threads, processes, dask://host:port, ...")
]
WorkersOption = Annotated[int | None, typer.Option(min=1, help="Parallel workers.")]
PLAN_ROWS = 50

spec_app = typer.Typer(
    help="Declarative pipelines (YAML specs): check, schema, run, plan, status.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def register(app: typer.Typer) -> None:
    """Add ``watch`` and the ``spec`` group to the CLI application."""
    app.command("watch")(watch)
    app.add_typer(spec_app, name="spec")


def watch(
    pipelines: SpecsArgument,
    *,
    store: StoreOption = None,
    catalog: CatalogOption = None,
    executor: ExecutorOption = None,
    workers: WorkersOption = None,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between listings of an object store.")
    ] = 5.0,
    debounce: Annotated[
        float, typer.Option(min=0.0, help="Seconds of quiet before a burst of changes runs.")
    ] = 0.5,
    once: Annotated[bool, typer.Option("--once", help="Run once and exit.")] = False,
) -> None:
    """Run the specs, then run again for what changes in their input repos (Ctrl-C stops)."""
    from databacked.specs.loading import load_specs
    from databacked.watch import watch as watch_loop

    load_specs(pipelines)  # a bad spec is one error sentence before anything starts
    config = settings(store=store, catalog=catalog, executor=executor, workers=workers)
    the_store = open_store(config)
    console.print(f"Watching {pipelines} over {the_store.url} (Ctrl-C to stop).", highlight=False)
    with open_catalog(config) as cat, _warnings_as_notes():
        report = watch_loop(
            pipelines,
            store=the_store,
            catalog=cat,
            executor=config.executor,
            workers=config.workers,
            interval=interval,
            debounce=debounce,
            once=once,
            on_run=_print_run,
        )
    totals = ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())) or "nothing"
    console.print(f"Stopped after {report.runs} run(s): {totals}.", highlight=False)


@contextmanager
def _warnings_as_notes() -> Iterator[None]:
    """Warnings (a glob matching nothing yet, a repo not there yet) as one yellow line each."""

    def show(message: Any, *_args: Any, **_kwargs: Any) -> None:
        err_console.print(f"[yellow]Warning:[/yellow] {message}", highlight=False, soft_wrap=True)

    with warnings.catch_warnings():
        warnings.simplefilter("default")  # each distinct message once
        warnings.showwarning = show
        yield


def _print_run(result: Any) -> None:
    done = [r for r in result.rows if r.status in ("ran", "failed", "removed")]
    if done:
        console.print(f"{result.summary()}", highlight=False, soft_wrap=True)
    for row in result.rows:
        if row.status == "failed":
            console.print(
                f"[red]{row.pipeline} datum {row.datum} failed:[/red] {one_line(row.error)}",
                highlight=False,
                soft_wrap=True,
            )


@spec_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of a spec file (Draft 2020-12)."""
    from databacked.specs.model import spec_json_schema

    typer.echo(json.dumps(spec_json_schema(), indent=2))


@spec_app.command("check")
def check(pipelines: SpecsArgument) -> None:
    """Validate specs: one error sentence with file and line, or what each pipeline reads."""
    from databacked.specs.graph import spec_order
    from databacked.specs.loading import load_specs

    specs = spec_order(load_specs(pipelines))
    for spec in specs:
        console.print(
            f"[green]ok[/green] {spec.pipeline} ({spec.origin}): reads "
            f"{', '.join(spec.input_repos())}",
            highlight=False,
            soft_wrap=True,
        )
        for note in spec.notes():
            console.print(f"  note: {note}", highlight=False, soft_wrap=True)


@spec_app.command("run")
def run(
    pipelines: SpecsArgument,
    *,
    store: StoreOption = None,
    catalog: CatalogOption = None,
    executor: ExecutorOption = None,
    workers: WorkersOption = None,
    grace: GraceOption = None,
    resources: ResourcesOption = None,
) -> None:
    """Run new and changed datums of every pipeline; exit 1 if any datum failed."""
    from databacked.specs.runner import run_specs

    config = settings(store=store, catalog=catalog, executor=executor, workers=workers)
    with open_catalog(config) as cat, _warnings_as_notes():
        result = run_specs(
            pipelines,
            store=open_store(config),
            catalog=cat,
            executor=config.executor,
            workers=config.workers,
            grace=grace,
            resources={**config.resources, **(parse_resources(resources) or {})},
        )
    console.print(_counts_table(result.counts()))
    _print_run(result)
    if not result.ok:
        raise typer.Exit(1)


@spec_app.command("plan")
def plan(
    pipelines: SpecsArgument,
    *,
    store: StoreOption = None,
    catalog: CatalogOption = None,
    limit: Annotated[int, typer.Option(help="Most datum rows to list.")] = PLAN_ROWS,
) -> None:
    """Show each datum as new / changed / cached / waiting / removed, and why."""
    from databacked.specs.runner import plan_specs

    config = settings(store=store, catalog=catalog)
    with open_catalog(config) as cat, _warnings_as_notes():
        result = plan_specs(pipelines, store=open_store(config), catalog=cat)
    table = Table(title=f"Plan: {len(result.rows)} datums")
    for column in ("pipeline", "datum", "attributes", "status", "reason"):
        table.add_column(column)
    for row in result.rows[:limit]:
        attributes = " ".join(f"{k}={v}" for k, v in sorted(row.attributes.items()))
        table.add_row(row.pipeline, short(row.datum), attributes, row.status, row.reason)
    console.print(table)
    if len(result.rows) > limit:
        console.print(f"... {len(result.rows) - limit} more datums (--limit to list more).")
    console.print(_counts_table(result.counts()))


@spec_app.command("status")
def status(
    pipelines: SpecsArgument,
    *,
    store: StoreOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Per pipeline: datums done, to run, waiting, removed; and the errors of failed ones."""
    from databacked.specs.runner import plan_specs

    config = settings(store=store, catalog=catalog)
    with open_catalog(config, create=False) as cat, _warnings_as_notes():
        result = plan_specs(pipelines, store=open_store(config), catalog=cat)
        failed = [r for r in result.rows if r.reason == "previously failed"]
        errors = cat.last_failures([r.key for r in failed]) if failed else {}
    counts: dict[str, dict[str, int]] = {}
    for row in result.rows:  # a datum to run because it failed before is counted as failed
        state = "failed" if row.reason == "previously failed" else row.status
        per = counts.setdefault(row.pipeline, {})
        per[state] = per.get(state, 0) + 1
    console.print(_counts_table(counts))
    for row in failed:
        error = one_line(errors[row.key].error_message) if row.key in errors else "?"
        console.print(
            f"[red]{row.pipeline} datum {row.datum} failed:[/red] {error}",
            highlight=False,
            soft_wrap=True,
        )


def _counts_table(counts: dict[str, dict[str, int]]) -> Table:
    statuses = sorted({s for per in counts.values() for s in per})
    table = Table(title="Datums per pipeline")
    table.add_column("pipeline")
    for status in statuses:
        table.add_column(status, justify="right")
    for pipeline, per in counts.items():
        table.add_row(pipeline, *(str(per.get(s, 0)) for s in statuses))
    return table


def plate_screen_demo(
    folder: Path,
    *,
    executor: str = "processes",
    workers: int | None = None,
    store: str | None = None,
    catalog: str | None = None,
) -> None:
    """Seed 002 live: plates arrive site by site while a watcher measures and reduces them."""
    import importlib
    import threading
    import time

    from databacked.examples import plate_screen
    from databacked.store import Store

    watch_loop = importlib.import_module("databacked.watch").watch  # see ``watch`` above
    folder = folder.resolve()
    (folder / "pipelines").mkdir(parents=True, exist_ok=True)
    (folder / "pipelines" / "screen.yml").write_text(plate_screen.spec_text())
    the_store = Store(store or folder / "data")
    if catalog is None:
        (folder / ".databacked").mkdir(parents=True, exist_ok=True)
        catalog = f"sqlite:///{folder / '.databacked' / 'catalog.db'}"
    the_store.put_bytes("raw/README.txt", b"Images arrive here: <plate>/<well>_s<site>_w<c>.tif\n")
    plates = ("plate1", "plate2")
    stop, arrived = threading.Event(), threading.Event()
    last_run = [0.0]

    def generate() -> None:
        plate_screen.arrive(the_store, plates=plates, delay=0.2, stop=stop)
        arrived.set()

    def supervise() -> None:
        # Stop once every image has arrived, every plate is reported and a run has seen it all.
        arrived.wait()
        done_at = time.monotonic()
        reports = [f"plate_report/{p}/plot.png" for p in plates]
        while not stop.wait(0.2):
            if last_run[0] > done_at and all(map(the_store.exists, reports)):
                stop.set()

    def on_run(result: Any) -> None:
        last_run[0] = time.monotonic()
        _print_run(result)

    console.print(
        f"Plates {', '.join(plates)} arrive in {the_store.uri('raw')} site by site "
        "while a watcher measures sites and reduces complete plates...",
        highlight=False,
        soft_wrap=True,
    )
    threads = [threading.Thread(target=t, daemon=True) for t in (generate, supervise)]
    for thread in threads:
        thread.start()
    try:
        with _warnings_as_notes():
            watch_loop(
                folder / "pipelines",
                store=the_store,
                catalog=catalog,
                executor=executor,
                workers=workers,
                debounce=0.3,
                stop_event=stop,
                on_run=on_run,
            )
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    frame = plate_screen.results(the_store, plate="plate1")
    table = Table(title="measure/plate1 as a DataFrame (databacked.examples.plate_screen.results)")
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.head(12).itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    console.print(table)
    for plate in plates:
        console.print(
            f"Report: {the_store.uri(f'plate_report/{plate}/summary.csv')}, plot.png",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"Query it: databacked ls measure/plate1 --store {the_store.url} --catalog {catalog}",
        highlight=False,
        soft_wrap=True,
    )
