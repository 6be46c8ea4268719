"""``logs``: what calls printed and logged, found by output path, key or step name.

The whole log of a call is in the store (``.databacked/logs/<key>.log``); when it is not
there (another store, removed by hand) the tail kept in the catalog is shown instead.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import typer

from databacked.cli.common import (
    CatalogOption,
    JsonOption,
    StoreOption,
    console,
    open_catalog,
    open_store,
    print_json,
    settings,
    short,
)
from databacked.errors import ConfigError

_KEY = re.compile(r"[0-9a-f]{6,64}")


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)


def logs(
    what: Annotated[
        str,
        typer.Argument(
            metavar="TARGET|KEY|STEP",
            help="An output path in the store, a call key (or its start), or a step name.",
        ),
    ],
    *,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed attempts.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Most calls to show, newest first.")] = 5,
    store: StoreOption = None,
    catalog: CatalogOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the logs (stdout, stderr, logging) of calls, newest first."""
    config = settings(store=store, catalog=catalog)
    the_store = open_store(config)
    with open_catalog(config, create=False) as cat:
        rows = _find(cat, the_store.url, what.strip(), failed, limit)
    if as_json:
        print_json([_row_json(row, _text(the_store, row)) for row in rows])
        return
    for row in rows:
        when = dt.datetime.fromtimestamp(row.started or 0).isoformat(sep=" ", timespec="seconds")
        colour = "red" if row.status == "failed" else "green"
        console.print(
            f"[bold]{row.step}[/bold] {short(row.key)} [{colour}]{row.status}[/{colour}] "
            f"{when} on {row.host or '?'}",
            highlight=False,
        )
        text = _text(the_store, row)
        console.out(text.rstrip("\n") or "(no output)", highlight=False)
        if row.status == "failed":
            console.print(
                f"[red]{row.error_type}: {row.error_message}[/red]", highlight=False, markup=True
            )
        console.print()


def _find(cat: Any, store_url: str, what: str, failed: bool, limit: int) -> list[Any]:
    artifact = cat.artifact_by_path(store_url, what.strip("/"))
    if artifact is not None and artifact.key:
        rows = cat.find_calls(key=artifact.key, failed=failed, limit=limit)
        if rows:
            return list(rows)
    if _KEY.fullmatch(what):
        rows = cat.find_calls(key=what, failed=failed, limit=limit)
        if rows:
            return list(rows)
    rows = cat.find_calls(step=what, failed=failed, limit=limit)
    if rows:
        return list(rows)
    kind = "failed call" if failed else "call"
    raise ConfigError(
        f"No {kind} matches {what!r} (an output path, a call key or a step name); "
        "see `databacked status` for recent runs."
    )


def _text(store: Any, row: Any) -> str:
    """The whole log from the store, else the tail the catalog kept."""
    from databacked.engine.capture import log_path

    text = _whole(store, log_path(row.key)) if row.status == "ok" else None
    if text is None:  # a failed attempt's file may hold a later attempt's log
        text = row.log or "".join(part for part in (row.stdout, row.stderr) if part)
    return text


def _row_json(row: Any, text: str) -> dict[str, Any]:
    return {
        "step": row.step,
        "key": row.key,
        "status": row.status,
        "started": row.started,
        "host": row.host,
        "log": text,
        "error_type": row.error_type or None,
        "error_message": row.error_message or None,
    }


def _whole(store: Any, path: str) -> str | None:
    try:
        return str(store.read_bytes(path).decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None


__all__ = ["logs", "register"]
