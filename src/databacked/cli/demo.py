"""``databacked demo``: generate a small plate and run seed 000's pipeline on it.

The first run computes everything; a second run over the same folder computes nothing and
says so. Everything lands under one folder (default ``./databacked-demo``)::

    raw/plate1/*.ome.tiff        the synthetic fields of view (inputs)
    data/                        the store: normalized/, projections/, summary.csv, plots/
    .databacked/catalog.db       the catalog (runs, calls, lineage)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from databacked.cli.common import console, short
from databacked.cli.progress import StepProgress, counts_from_calls, one_line, summary_table

if TYPE_CHECKING:
    import pandas as pd


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the CLI application."""
    app.command("demo")(demo)


def demo(
    *,
    folder: Annotated[
        Path, typer.Option(help="Where the plate, the store and the catalog go.")
    ] = Path("databacked-demo"),
    fields: Annotated[int, typer.Option(min=1, help="Fields of view per well.")] = 2,
    executor: Annotated[
        str, typer.Option(help="inline, threads, processes, dask, ...")
    ] = "processes",
    workers: Annotated[int | None, typer.Option(help="Parallel workers (default: cores).")] = None,
    store: Annotated[str | None, typer.Option(help="Store URL (default: FOLDER/data).")] = None,
    catalog: Annotated[
        str | None, typer.Option(help="Catalog URL (default: SQLite in FOLDER/.databacked).")
    ] = None,
    plate_screen: Annotated[
        bool,
        typer.Option(
            "--plate-screen", help="Seed 002: plates arrive over time while a watcher runs."
        ),
    ] = False,
) -> None:
    """Generate a small synthetic plate and run the example cell pipeline on it.

    Run it twice: the second run finds every call cached and recomputes nothing.
    """
    if plate_screen:
        from databacked.cli.specs import plate_screen_demo

        plate_screen_demo(folder, executor=executor, workers=workers, store=store, catalog=catalog)
        return
    import databacked as db
    from databacked.examples import make_plate
    from databacked.examples.cells import cells

    folder = folder.resolve()
    if store is None:
        store = str(folder / "data")
    if catalog is None:
        (folder / ".databacked").mkdir(parents=True, exist_ok=True)
        catalog = f"sqlite:///{folder / '.databacked' / 'catalog.db'}"

    with console.status("Generating the plate..."):
        dataset = make_plate(folder / "raw", fields=fields)
    console.print(
        f"Plate: {dataset.fov_path.nunique()} fields of view, {len(dataset)} cells "
        f"in {folder / 'raw'}",
        highlight=False,
    )

    with StepProgress(console, live=console.is_terminal) as progress:
        result = db.run(
            cells,
            dataset,
            store=store,
            catalog=catalog,
            executor=executor,
            workers=workers,
            progress=progress,
        )
    counts = progress.counts or counts_from_calls(result.calls)
    console.print(summary_table(counts))
    totals: Counter[str] = sum(counts.values(), Counter())
    total = sum(totals.values())
    if total and totals["cached"] == total:
        console.print(f"[green]All {total} calls cached, nothing recomputed.[/green]")

    if not result.ok:
        errors = progress.errors or [
            (str(r.step), str(r.key), one_line(str(r.error)))
            for r in result.calls[result.calls["status"] == "failed"].itertuples(index=False)
        ]
        for step, key, error in errors[:10]:
            console.print(f"[red]{step} failed[/red] ({short(key)}): {error}", highlight=False)
        if len(errors) > 10:
            console.print(f"... and {len(errors) - 10} more; see `databacked status`.")
        raise typer.Exit(code=1)

    value = result.value
    console.print(_well_table(db.load(value["summary"])))
    console.print(f"Summary table: {_uri(value['summary'])}", highlight=False, soft_wrap=True)
    console.print(
        f"Projections:   {_folder_of(_uri(value['projections'][0]))}",
        highlight=False,
        soft_wrap=True,
    )
    for plot in value["plots"]:
        console.print(f"Plate plot:    {_uri(plot)}", highlight=False, soft_wrap=True)
    console.print(f"Catalog:       {catalog}", highlight=False, soft_wrap=True)


def _uri(value: Any) -> str:
    return str(getattr(value, "uri", value))


def _folder_of(uri: str) -> str:
    return uri.rsplit("/", 1)[0] + "/"


def _well_table(summary: pd.DataFrame) -> Table:
    table = Table(title="Cells per well")
    for column in ("plate", "well", "cells", "nucleus area (um^2)", "dna mean"):
        table.add_column(column, justify="left" if column in ("plate", "well") else "right")
    grouped = summary.groupby(["plate", "well"], sort=True)
    for (plate, well), group in grouped:
        table.add_row(
            str(plate),
            str(well),
            str(len(group)),
            f"{group['nucleus_area_um2'].mean():.1f}",
            f"{group['dna_mean'].mean():.0f}",
        )
    return table
