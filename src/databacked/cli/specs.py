"""Declarative pipelines on the command line: ``watch`` and ``spec schema|check|run|plan``.

``databacked watch pipelines/`` runs the specs now and again whenever their input repos
change, until Ctrl-C or SIGTERM (which let the current run finish: exit 0). The ``spec``
group validates specs, prints their JSON Schema, and runs or plans them once.
"""

from __future__ import annotations

import json
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
    warnings_as_notes,
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
    datalad: Annotated[
        bool | None,
        typer.Option("--datalad/--no-datalad", help="Save each run's outputs with a run record."),
    ] = None,
) -> None:
    """Run the specs, then run again for what changes in their input repos (Ctrl-C stops)."""
    from databacked.specs.loading import load_specs
    from databacked.watch import watch as watch_loop

    load_specs(pipelines)  # a bad spec is one error sentence before anything starts
    config = settings(store=store, catalog=catalog, executor=executor, workers=workers)
    the_store = open_store(config)
    console.print(f"Watching {pipelines} over {the_store.url} (Ctrl-C to stop).", highlight=False)
    with open_catalog(config) as cat, warnings_as_notes():
        report = watch_loop(
            pipelines,
            store=the_store,
            catalog=cat,
            executor=config.executor,
            workers=config.workers,
            interval=interval,
            debounce=debounce,
            once=once,
            on_run=_saving(pipelines, the_store, config, datalad),
        )
    totals = ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())) or "nothing"
    console.print(f"Stopped after {report.runs} run(s): {totals}.", highlight=False)


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
    """Validate specs: the YAML, then that each transform imports with a fitting signature
    (a cmd not on PATH is a warning); one error sentence with file and line."""
    from databacked.specs.checks import check_transform
    from databacked.specs.graph import spec_order
    from databacked.specs.loading import load_specs, project_folder

    specs = spec_order(load_specs(pipelines))
    project = project_folder(pipelines)
    for spec in specs:
        notes = check_transform(spec, project)
        console.print(
            f"[green]ok[/green] {spec.pipeline} ({spec.origin}): reads "
            f"{', '.join(spec.input_repos())}",
            highlight=False,
            soft_wrap=True,
        )
        for note in notes:
            err_console.print(f"[yellow]Warning:[/yellow] {note}", highlight=False, soft_wrap=True)
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
    datalad: Annotated[
        bool | None,
        typer.Option(
            "--datalad/--no-datalad",
            help="Save the output repos to the DataLad dataset with a run record.",
        ),
    ] = None,
    grace: GraceOption = None,
    resources: ResourcesOption = None,
) -> None:
    """Run new and changed datums of every pipeline; exit 1 if any datum failed."""
    config = settings(store=store, catalog=catalog, executor=executor, workers=workers)
    if config.datalad if datalad is None else datalad:
        _run_saved(pipelines, config)
        return
    with _warmed_executor(config) as pool:
        from databacked.specs.runner import run_specs

        with open_catalog(config) as cat, warnings_as_notes():
            result = run_specs(
                pipelines,
                store=open_store(config),
                catalog=cat,
                executor=pool,
                workers=config.workers,
                grace=grace,
                resources={**config.resources, **(parse_resources(resources) or {})},
            )
    _print_counts(result)
    _print_run(result)
    if not result.ok:
        raise typer.Exit(1)


@contextmanager
def _warmed_executor(config: Any) -> Iterator[Any]:
    """The configured executor; on a first run (a SQLite catalog not created yet: every
    datum will run) its workers start now, while this process imports the runner and
    SQLAlchemy, reads the specs and plans."""
    from databacked.catalog import fresh_sqlite
    from databacked.executors import get_executor
    from databacked.specs import WORKER_MODULES

    pool = get_executor(config.executor, workers=config.workers)
    try:
        if fresh_sqlite(config.catalog):
            pool.warm(WORKER_MODULES)
        yield pool
    finally:
        pool.close()


def _saving(pipelines: Path, store: Any, config: Any, datalad: bool | None) -> Any:
    """The watcher's per-run callback: print, and with --datalad save with a run record."""
    if not (config.datalad if datalad is None else datalad):
        return _print_run
    from databacked.integrations.datalad import spec_saver

    cmd = ["databacked", "spec", "run", str(pipelines), "--no-datalad"]
    save = spec_saver(pipelines, store, cmd=cmd)

    def on_run(result: Any) -> None:
        _print_run(result)
        if commit := save(result):
            console.print(f"DataLad: saved the output repos ({short(commit)})")

    return on_run


def _run_saved(pipelines: Path, config: Any) -> None:
    """``spec run --datalad``: the run, then one DataLad commit with a run record."""
    import sys

    from databacked.integrations.datalad import run_specs_saved

    argv = [a for a in sys.argv[1:] if a not in ("--datalad", "--no-datalad")]
    with open_catalog(config) as cat, warnings_as_notes():
        result, commit = run_specs_saved(
            pipelines,
            store=open_store(config),
            catalog=cat,
            cmd=["databacked", *argv, "--no-datalad"],
            executor=config.executor,
            workers=config.workers,
        )
    console.print(_counts_table(result.counts()))
    _print_run(result)
    if commit:
        console.print(f"DataLad: saved the output repos with a run record ({short(commit)})")
    if not result.ok:
        raise typer.Exit(1)


@spec_app.command("plan")
def plan(
    pipelines: SpecsArgument,
    *,
    store: StoreOption = None,
    catalog: CatalogOption = None,
    limit: Annotated[int, typer.Option(help="Most datum rows to list.")] = PLAN_ROWS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show each datum as new / changed / cached / waiting / removed, and why."""
    from databacked.specs.runner import plan_specs

    config = settings(store=store, catalog=catalog)
    with open_catalog(config) as cat, warnings_as_notes():
        result = plan_specs(pipelines, store=open_store(config), catalog=cat)
    if as_json:
        from databacked.cli.common import print_json

        print_json(
            {
                "datums": [
                    {
                        "pipeline": r.pipeline,
                        "datum": r.datum,
                        "key": r.key,
                        "status": r.status,
                        "reason": r.reason,
                        "attributes": r.attributes,
                    }
                    for r in result.rows
                ],
                "counts": result.counts(),
            }
        )
        return
    if not result.rows:
        _print_counts(result)
        return
    table = Table(title=f"Plan: {len(result.rows)} datums")
    for column in ("pipeline", "datum", "attributes", "status", "reason"):
        table.add_column(column)
    for row in result.rows[:limit]:
        attributes = " ".join(f"{k}={v}" for k, v in sorted(row.attributes.items()))
        table.add_row(row.pipeline, short(row.datum), attributes, row.status, row.reason)
    console.print(table)
    if len(result.rows) > limit:
        console.print(f"... {len(result.rows) - limit} more datums (--limit to list more).")
    _print_counts(result)


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
    with open_catalog(config, create=False) as cat, warnings_as_notes():
        result = plan_specs(pipelines, store=open_store(config), catalog=cat)
        failed = [r for r in result.rows if r.reason == "previously failed"]
        errors = cat.last_failures([r.key for r in failed]) if failed else {}
    counts: dict[str, dict[str, int]] = {}
    for row in result.rows:  # a datum to run because it failed before is counted as failed
        state = "failed" if row.reason == "previously failed" else row.status
        per = counts.setdefault(row.pipeline, {})
        per[state] = per.get(state, 0) + 1
    if not counts:
        _print_counts(result)
        return
    console.print(_counts_table(counts))
    for row in failed:
        error = one_line(errors[row.key].error_message) if row.key in errors else "?"
        console.print(
            f"[red]{row.pipeline} datum {row.datum} failed:[/red] {error}",
            highlight=False,
            soft_wrap=True,
        )


def _print_counts(result: Any) -> None:
    """The datums per pipeline, or one sentence when there are none (never an empty table)."""
    if result.rows:
        console.print(_counts_table(result.counts()))
        return
    console.print(
        "No datums yet: no input file matches a glob of these specs (see the warnings); "
        "they run when matching files arrive.",
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
    stop, arrived, finished = threading.Event(), threading.Event(), threading.Event()
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
                finished.set()
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
        with warnings_as_notes():
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
    _report_screen(the_store, plates, catalog, complete=finished.is_set())


def _report_screen(the_store: Any, plates: tuple[str, ...], catalog: str, complete: bool) -> None:
    """What the screen produced; after Ctrl-C only what exists, and exit 130."""
    from databacked.examples import plate_screen

    measured = [p for p in plates if next(iter(the_store.list(f"measure/{p}")), None)]
    if measured:
        frame = plate_screen.results(the_store, plate=measured[0])
        table = Table(
            title=f"measure/{measured[0]} as a DataFrame (databacked.examples.plate_screen.results)"
        )
        for column in frame.columns:
            table.add_column(str(column))
        for row in frame.head(12).itertuples(index=False):
            table.add_row(*(str(v) for v in row))
        console.print(table)
    for plate in plates:
        made = [
            name
            for name in ("summary.csv", "plot.png")
            if the_store.exists(f"plate_report/{plate}/{name}")
        ]
        if made:
            console.print(
                f"Report: {the_store.uri(f'plate_report/{plate}/{made[0]}')}"
                + (f", {', '.join(made[1:])}" if made[1:] else ""),
                highlight=False,
                soft_wrap=True,
            )
    if measured:
        console.print(
            f"Query it: databacked ls measure/{measured[0]} --store {the_store.url} "
            f"--catalog {catalog}",
            highlight=False,
            soft_wrap=True,
        )
    if not complete:
        err_console.print(
            "[yellow]Interrupted[/yellow] before every plate was reported; what is listed "
            "above exists. Run the demo again to go on (finished datums stay cached).",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130)
