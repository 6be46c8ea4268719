"""``run`` and ``plan``: load a pipeline by reference, bind ``--param``s, call the engine."""

from __future__ import annotations

import math
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from databacked.cli.common import (
    CatalogOption,
    StoreOption,
    check_params,
    console,
    load_pipeline,
    open_catalog,
    open_store,
    parse_params,
    settings,
    short,
)
from databacked.cli.common import warnings_as_notes as notes
from databacked.cli.progress import StepProgress, counts_from_calls, one_line, summary_table
from databacked.errors import ConfigError

Reference = Annotated[
    str,
    typer.Argument(
        metavar="FILE.py:PIPELINE",
        help="The pipeline: FILE.py:PIPELINE or package.module:PIPELINE.",
    ),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="NAME=VALUE",
        help="A pipeline parameter NAME=VALUE, converted by its annotation (a DataFrame "
        "from a CSV/Parquet/Excel path, int, float, bool, Path, list, JSON); repeatable.",
    ),
]
GraceOption = Annotated[
    float | None,
    typer.Option(
        min=0,
        help="Seconds running calls get to finish after Ctrl-C or SIGTERM (default 10); "
        "a second Ctrl-C stops at once.",
    ),
]
ResourcesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--resources",
        metavar="NAME=AMOUNT",
        help="Capacity calls share, e.g. gpus=1 or memory=64GB (default: detected); repeatable.",
    ),
]
PLAN_ROWS = 50


def parse_resources(items: list[str] | None) -> dict[str, str] | None:
    """``["gpus=1", "cpus=8,memory=64GB"]`` -> ``{"gpus": "1", ...}``; None when not given."""
    if not items:
        return None
    out: dict[str, str] = {}
    for item in (part for text in items for part in text.split(",") if part.strip()):
        name, sep, amount = item.partition("=")
        if not sep or not name.strip() or not amount.strip():
            raise ConfigError(
                f"--resources {item!r} is not NAME=AMOUNT; write e.g. --resources gpus=1."
            )
        out[name.strip()] = amount.strip()
    return out


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("plan")(plan)


def run(
    reference: Reference,
    *,
    param: ParamOption = None,
    store: StoreOption = None,
    catalog: CatalogOption = None,
    executor: Annotated[
        str | None, typer.Option(help="inline, threads, processes, dask://host:port, ...")
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel workers.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show the plan; run nothing.")
    ] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="Re-hash cached outputs before trusting them.")
    ] = False,
    datalad: Annotated[
        bool | None,
        typer.Option(
            "--datalad/--no-datalad",
            help="Save changed outputs to the DataLad dataset with a run record.",
        ),
    ] = None,
    grace: GraceOption = None,
    resources: ResourcesOption = None,
) -> None:
    """Run a pipeline: only new or changed calls compute; exit 1 if any call failed.

    Given a folder of YAML specs (or one spec file) instead, runs the declarative pipelines
    as `databacked spec run` does.
    """
    if is_spec_reference(reference) and not dry_run:
        from databacked.cli import specs

        specs.run(
            Path(reference),
            store=store,
            catalog=catalog,
            executor=executor,
            workers=workers,
            datalad=datalad,
            grace=grace,
            resources=resources,
        )
        return
    if dry_run:
        plan(reference, param=param, store=store, catalog=catalog)
        return
    params = parse_params(param)
    config = settings(store=store, catalog=catalog, executor=executor, workers=workers)
    pipeline = load_pipeline(reference)
    check_params(pipeline, params, reference)
    import databacked as db

    # Objects, not URLs: the store carries storage options and durability from settings.
    the_store = open_store(config)
    with (
        open_catalog(config) as cat,
        _datalad(config.datalad if datalad is None else datalad, the_store, cat, reference) as rec,
        StepProgress(console, live=console.is_terminal) as progress,
        notes(),
    ):
        result = db.run(
            pipeline,
            store=the_store,
            catalog=cat,
            executor=config.executor,
            workers=config.workers,
            verify=verify or config.verify,
            progress=progress,
            grace=grace,
            resources=parse_resources(resources),
            **params,
        )
        rec.run_id = result.run_id if result.ok else None
    if rec.commit:
        console.print(f"DataLad: saved the outputs with a run record ({short(rec.commit)})")
    counts = progress.counts or counts_from_calls(result.calls)
    console.print(summary_table(counts))
    errors = progress.errors or _errors_from_calls(result)
    for step, key, error in errors[:20]:
        console.print(f"[red]{step} failed[/red] ({short(key)}): {error}", highlight=False)
    if len(errors) > 20:
        console.print(f"... and {len(errors) - 20} more; see `databacked status`.")
    if not result.ok:
        raise typer.Exit(1)


def _datalad(enabled: bool, store: Any, catalog: Any, reference: str) -> Any:
    """Seed 004: ``--datalad`` saves the run's outputs with a DataLad run record."""
    from databacked.integrations import datalad

    if not enabled:
        return nullcontext(datalad.Recorder())
    # What `datalad rerun` executes: this command line, without the flag that saves.
    argv = [a for a in sys.argv[1:] if a not in ("--datalad", "--no-datalad")]
    code = [where] if (where := reference.rpartition(":")[0]).endswith(".py") else []
    return datalad.recording(store, catalog, ["databacked", *argv, "--no-datalad"], code=code)


def plan(
    reference: Reference,
    *,
    param: ParamOption = None,
    store: StoreOption = None,
    catalog: CatalogOption = None,
    limit: Annotated[int, typer.Option(help="Most call rows to list.")] = PLAN_ROWS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show what a run would do: each call cached, to run or waiting, and why."""
    if is_spec_reference(reference):
        from databacked.cli import specs

        specs.plan(Path(reference), store=store, catalog=catalog, limit=limit, as_json=as_json)
        return
    params = parse_params(param)
    config = settings(store=store, catalog=catalog)
    pipeline = load_pipeline(reference)
    check_params(pipeline, params, reference)
    import databacked as db

    with open_catalog(config) as cat, notes():
        result = db.plan(pipeline, store=open_store(config), catalog=cat, **params)
    calls = result.calls
    if as_json:
        from databacked.cli.common import print_json

        rows = [{k: _text(v) or None for k, v in row.items()} for row in calls.to_dict("records")]
        print_json({"calls": rows, "counts": result.counts()})
        return
    table = Table(title=f"Plan: {len(calls)} calls")
    for column in ("step", "key", "status", "reason", "target"):
        table.add_column(column)
    for row in calls.head(limit).itertuples(index=False):
        table.add_row(
            str(row.step),
            short(str(row.key)),
            _styled(str(row.status)),
            _text(getattr(row, "reason", "")),
            _text(getattr(row, "target", "")),
        )
    console.print(table)
    if len(calls) > limit:
        console.print(f"... {len(calls) - limit} more calls (--limit to list more).")
    per_status = calls.groupby("status").size().to_dict() if len(calls) else {}
    console.print(", ".join(f"{n} {status}" for status, n in sorted(per_status.items())) or "")


def _styled(status: str) -> str:
    colour = {"cached": "green", "run": "yellow", "waiting": "cyan", "failed": "red"}.get(status)
    return f"[{colour}]{status}[/{colour}]" if colour else status


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):  # NaN from pandas
        return ""
    return str(value)


def _errors_from_calls(result: Any) -> list[tuple[str, str, str]]:
    calls = result.calls
    failed = calls[calls["status"] == "failed"]
    return [
        (str(r.step), str(r.key), one_line(_text(getattr(r, "error", ""))))
        for r in failed.itertuples(index=False)
    ]


def is_spec_reference(reference: str) -> bool:
    """A folder (of pipelines/*.yml) or a YAML/JSON spec file, rather than FILE.py:PIPELINE."""
    path = Path(reference)
    if path.suffix.lower() in (".yml", ".yaml"):
        return True
    return ":" not in reference and path.is_dir()
