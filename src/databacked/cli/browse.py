"""Read-only commands over the catalog: ``status``, ``ls``, ``show`` and ``lineage``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.tree import Tree

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
from databacked.cli.progress import one_line
from databacked.errors import ConfigError
from databacked.units import human_size, when

if TYPE_CHECKING:
    from databacked.catalog import Catalog
    from databacked.catalog.records import CallRow, LineageRow


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("ls")(ls)
    app.command("show")(show)
    app.command("lineage")(lineage)


def status(
    *,
    limit: Annotated[int, typer.Option(help="How many recent runs to list.")] = 10,
    run: Annotated[str | None, typer.Option("--run", help="Run id (or prefix) to detail.")] = None,
    catalog: CatalogOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recent runs, then the latest run's calls per step (cached ones too) and its failures."""
    config = settings(catalog=catalog)
    with open_catalog(config, create=False) as cat:
        runs = cat.runs(limit=max(limit, 1))
        if not runs:
            if as_json:
                print_json({"runs": [], "run": None, "steps": {}, "failures": []})
                return
            console.print("No runs recorded yet; start one with `databacked run FILE.py:PIPELINE`.")
            return
        chosen = runs[0] if run is None else _find_run(runs, run)
        calls = cat.calls_of_run(chosen.id)
    per_step = _per_step(chosen, calls)
    failures = [c for c in calls if c.status == "failed"]
    if as_json:
        print_json(
            {
                "runs": [_run_json(r) for r in runs],
                "run": chosen.id,
                "steps": per_step,
                "failures": [{"step": c.step, "key": c.key, "error": _error(c)} for c in failures],
            }
        )
        return
    table = Table(title="Recent runs")
    for column in ("run", "pipeline", "status", "started", "seconds", "calls"):
        table.add_column(column)
    for row in runs:
        seconds = f"{row.finished - row.started:.1f}" if row.finished else ""
        table.add_row(
            short(row.id, 8),
            row.pipeline,
            _status(row.status),
            when(row.started),
            seconds,
            ", ".join(f"{n} {s}" for s, n in _run_counts(row).items() if n),
        )
    console.print(table)
    _print_run_calls(chosen, per_step, failures)


def _run_counts(row: Any) -> dict[str, int]:
    summary = row.summary or {}
    counts = summary.get("counts", summary)
    return {s: n for s, n in counts.items() if isinstance(n, int) and not isinstance(n, bool)}


def _run_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "pipeline": row.pipeline,
        "status": row.status,
        "started": row.started,
        "finished": row.finished,
        "counts": _run_counts(row),
    }


def _per_step(run: Any, calls: list[CallRow]) -> dict[str, dict[str, int]]:
    """Calls per step and status: the run's own summary (it counts cached calls, which have
    no row in this run), else the rows recorded for it."""
    steps = (run.summary or {}).get("steps")
    if isinstance(steps, dict) and steps:
        return {str(k): {str(s): int(n) for s, n in v.items()} for k, v in steps.items()}
    per_step: dict[str, dict[str, int]] = {}
    for call in calls:
        status = "ran" if call.status == "ok" else call.status
        per = per_step.setdefault(call.step, {})
        per[status] = per.get(status, 0) + 1
    return per_step


def _error(call: CallRow) -> str:
    return one_line(f"{call.error_type}: {call.error_message}" if call.error_type else "")


def _find_run(runs: list[Any], prefix: str) -> Any:
    matches = [r for r in runs if r.id.startswith(prefix)]
    if len(matches) != 1:
        raise ConfigError(
            f"No single recent run starts with {prefix!r}; pick an id from the table "
            "(or raise --limit)."
        )
    return matches[0]


def _print_run_calls(
    run: Any, per_step: dict[str, dict[str, int]], failures: list[CallRow]
) -> None:
    if not per_step:
        console.print(
            f"Run {short(run.id, 8)} recorded no calls ({run.status}); its pipeline had "
            "nothing to run or it stopped before any call.",
            highlight=False,
        )
    else:
        order = ("ran", "cached", "failed", "skipped")
        found = {s for c in per_step.values() for s in c}
        statuses = [s for s in order if s in found] + sorted(found - set(order))
        table = Table(title=f"Calls of run {short(run.id, 8)}")
        table.add_column("step")
        for s in statuses:
            table.add_column(s, justify="right")
        for step, counts in per_step.items():
            table.add_row(step, *(str(counts.get(s, 0)) if counts.get(s) else "" for s in statuses))
        console.print(table)
    for call in failures[:20]:
        label = f"[red]{call.step} failed[/red] ({short(call.key)})"
        console.print(f"{label}: {_error(call)}", highlight=False)
    if len(failures) > 20:
        console.print(f"... and {len(failures) - 20} more failures.")


def ls(
    prefix: Annotated[str, typer.Argument(help="Only paths starting with this.")] = "",
    *,
    store: StoreOption = None,
    catalog: CatalogOption = None,
    as_json: JsonOption = False,
) -> None:
    """Artifacts the catalog knows in the store: path, size, format, producing step, time."""
    config = settings(store=store, catalog=catalog)
    the_store = open_store(config)
    with open_catalog(config, create=False) as cat:
        rows = cat.artifacts(the_store.url, prefix or None)
        producers = cat.lookup({r.key for r in rows if r.key})
    if as_json:
        print_json(
            [
                {
                    **_artifact_json(row),
                    "step": producers[row.key].step if row.key in producers else None,
                }
                for row in rows
            ]
        )
        return
    if not rows:
        console.print(f"No artifacts recorded under {the_store.url}/{prefix}".rstrip("/") + ".")
        return
    table = Table(title=f"{len(rows)} artifacts in {the_store.url}")
    for column in ("path", "size", "format", "step", "recorded"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for row in rows:
        step = producers[row.key].step if row.key in producers else ""
        table.add_row(row.path, human_size(row.size), row.format, step, when(row.created))
    console.print(table)


def show(
    what: Annotated[str, typer.Argument(help="An artifact path in the store, or a call key.")],
    *,
    store: StoreOption = None,
    catalog: CatalogOption = None,
    as_json: JsonOption = False,
) -> None:
    """An artifact's record, or a call's parameters, inputs, outputs and error."""
    config = settings(store=store, catalog=catalog)
    the_store = open_store(config)
    with open_catalog(config, create=False) as cat:
        artifact = cat.artifact_by_path(the_store.url, what.strip("/"))
        if artifact is not None:
            producer = cat.lookup([artifact.key]).get(artifact.key) if artifact.key else None
            if as_json:
                print_json(
                    {
                        "artifact": {**_artifact_json(artifact), "uri": the_store.uri(what)},
                        "call": _call_json(producer) if producer is not None else None,
                    }
                )
                return
            _show_artifact(artifact, producer, the_store.uri(artifact.path))
            return
        call = _find_call(cat, what)
        inputs = _inputs_of(cat, call)
    if as_json:
        refs = [{"path": r.path, "hash": r.hash, "store": r.store} for r in inputs]
        print_json({"call": {**_call_json(call), "inputs": refs}})
        return
    _show_call(call, inputs)


def _inputs_of(cat: Catalog, call: CallRow) -> tuple[Any, ...]:
    """The call's input artifacts, read from the first level of one output's lineage."""
    for artifact in (call.outputs or {}).values():
        rows = cat.lineage(artifact.store, artifact.path)
        if rows and rows[0].call is not None and rows[0].call.key == call.key:
            return rows[0].inputs
    return ()


def _find_call(cat: Catalog, key: str) -> CallRow:
    found = cat.lookup([key]).get(key)
    if found is not None:
        return found
    # A short key, or a failed attempt (never in the cache): search recent runs' calls.
    candidates: dict[str, CallRow] = {}
    for run in cat.runs(limit=50):
        for call in cat.calls_of_run(run.id):
            if call.key.startswith(key):
                candidates.setdefault(call.key, call)
    if len(candidates) == 1:
        call = next(iter(candidates.values()))
        return cat.lookup([call.key]).get(call.key) or call
    if candidates:
        raise ConfigError(f"{key!r} matches {len(candidates)} calls; give more of the key.")
    raise ConfigError(
        f"No artifact at {key!r} and no call with that key; list artifacts with `databacked ls`."
    )


def _show_artifact(artifact: Any, producer: CallRow | None, uri: str) -> None:
    table = Table(show_header=False, title=artifact.path)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("uri", uri)
    table.add_row("hash", artifact.hash)
    table.add_row("size", f"{human_size(artifact.size)} ({artifact.size} bytes)")
    table.add_row("format", artifact.format)
    table.add_row("recorded", when(artifact.created))
    if producer is not None:
        table.add_row("step", producer.step)
        table.add_row("call", producer.key)
    for name, value in (artifact.metadata or {}).items():
        table.add_row(f"meta.{name}", _compact(value))
    console.print(table)


def _show_call(call: CallRow, inputs: tuple[Any, ...] = ()) -> None:
    table = Table(show_header=False, title=f"call {short(call.key)} of {call.step}")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("key", call.key)
    table.add_row("step", call.step)
    table.add_row("status", _status(call.status))
    table.add_row("fingerprint", call.fingerprint)
    table.add_row("run", call.run_id or "")
    table.add_row("started", when(call.started))
    if call.seconds is not None:
        table.add_row("seconds", f"{call.seconds:.3f}")
    table.add_row("host", f"{call.host} (pid {call.pid})" if call.pid else call.host)
    for name, value in (call.params or {}).items():
        table.add_row(f"param {name}", _compact(value))
    for ref in inputs:
        table.add_row("input", f"{ref.path or '(value)'} [dim]{short(ref.hash)}[/dim]")
    for name, artifact in (call.outputs or {}).items():
        table.add_row(f"output {name}", f"{artifact.path} ({human_size(artifact.size)})")
    if call.error_type or call.error_message:
        table.add_row("error", f"[red]{call.error_type}[/red]: {call.error_message}")
    console.print(table)
    if call.traceback:
        console.print(call.traceback, markup=False, highlight=False)
    for name, text in (("stdout", call.stdout), ("stderr", call.stderr)):
        if text:
            console.rule(name)
            console.print(text, markup=False, highlight=False)


def lineage(
    path: Annotated[str, typer.Argument(help="An artifact path in the store.")],
    *,
    store: StoreOption = None,
    catalog: CatalogOption = None,
    as_json: JsonOption = False,
) -> None:
    """How a file was made: the call that wrote it, its inputs, and theirs, as a tree."""
    config = settings(store=store, catalog=catalog)
    the_store = open_store(config)
    with open_catalog(config, create=False) as cat:
        rows = cat.lineage(the_store.url, path.strip("/"))
    if not rows:
        raise ConfigError(
            f"The catalog knows no artifact at {path!r} in {the_store.url}; "
            "list the known ones with `databacked ls`."
        )
    if as_json:
        print_json(
            [
                {
                    "depth": r.depth,
                    "path": r.path,
                    "hash": r.hash,
                    "store": r.store,
                    "step": r.call.step if r.call is not None else None,
                    "key": r.call.key if r.call is not None else None,
                    "parent": r.parent,
                    "argument": r.argument,
                }
                for r in rows
            ]
        )
        return
    console.print(lineage_tree(rows))


def lineage_tree(rows: list[LineageRow]) -> Tree:
    """Rows come breadth first; each names the call (``parent``) that consumed it."""
    root_row = rows[0]
    root = Tree(_node_label(root_row))
    # Each expanded call's node, so its inputs (one level deeper) attach under it.
    nodes: dict[str, Tree] = {}
    if root_row.call is not None:
        nodes[root_row.call.key] = root
    for row in rows[1:]:
        parent = nodes.get(row.parent or "", root)
        node = parent.add(_node_label(row))
        if row.call is not None and row.call.key not in nodes:
            nodes[row.call.key] = node
    return root


def _node_label(row: LineageRow) -> str:
    name = row.path or f"(value {short(row.hash)})"
    argument = f"[dim]{row.argument} =[/dim] " if row.argument else ""
    if row.call is None:
        return f"{argument}[bold]{name}[/bold] [dim]source, {short(row.hash)}[/dim]"
    return (
        f"{argument}[bold]{name}[/bold] [dim]{short(row.hash)}[/dim] "
        f"<- [cyan]{row.call.step}[/cyan] [dim]({short(row.call.key)})[/dim]"
    )


def _artifact_json(row: Any) -> dict[str, Any]:
    return {
        "path": row.path,
        "hash": row.hash,
        "size": row.size,
        "format": row.format,
        "created": row.created,
        "key": row.key,
        "metadata": row.metadata or {},
    }


def _call_json(call: CallRow) -> dict[str, Any]:
    return {
        "key": call.key,
        "step": call.step,
        "status": call.status,
        "fingerprint": call.fingerprint,
        "run": call.run_id,
        "started": call.started,
        "seconds": call.seconds,
        "host": call.host,
        "pid": call.pid,
        "params": call.params or {},
        "outputs": {n: a.path for n, a in (call.outputs or {}).items()},
        "error": _error(call) or None,
        "traceback": call.traceback or None,
        "stdout": call.stdout or None,
        "stderr": call.stderr or None,
    }


def _status(status: str) -> str:
    colour = {"ok": "green", "completed": "green", "failed": "red", "running": "yellow"}.get(status)
    return f"[{colour}]{status}[/{colour}]" if colour else status


def _compact(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:197] + "..."
