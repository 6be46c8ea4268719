"""The HTML pages: runs, a run, a call, artifacts, lineage (server-rendered with Jinja2)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from databacked.ui import artifact_queries, content, images, lineage, queries
from databacked.ui.api import epoch_of_day
from databacked.ui.logs import full_log
from databacked.ui.state import (
    UiState,
    artifact_or_404,
    full_key,
    not_found,
    run_id_or_404,
    ui,
)
from databacked.ui.templating import render

router = APIRouter(include_in_schema=False)
RUN_PAGE = 50
LAZY_RUN = 5_000
"""Runs with more calls than this get their per-step counts after the runs page paints."""
"""Calls per page on a run's page (the API pages by 100)."""
State = Annotated[UiState, Depends(ui)]


@router.get("/", response_class=HTMLResponse)
@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    *,
    request: Request,
    state: State,
    status: Annotated[str | None, Query(max_length=32)] = None,
    pipeline: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Runs newest first, filtered by status, pipeline and date; keyset pages."""
    since_day, until_day = _day(since), _day(until)

    def read(conn: Any) -> dict[str, Any]:
        page, older, newer = queries.list_runs(
            conn,
            status=status or None,
            pipeline=pipeline or None,
            since=epoch_of_day(since_day),
            until=epoch_of_day(until_day, end=True),
            before=before,
            after=after,
        )
        state.steps(conn, page, lazy_above=LAZY_RUN)
        return {"runs": page, "older": older, "newer": newer, "pipelines": queries.pipelines(conn)}

    try:
        data = state.read(read)
    except queries.BadCursor as exc:
        raise HTTPException(400, str(exc)) from exc
    filters = {
        "status": status or "",
        "pipeline": pipeline or "",
        "since": since_day.isoformat() if since_day else "",
        "until": until_day.isoformat() if until_day else "",
    }
    return render(request, "runs.html", filters=filters, **data)


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, f"{text!r} is not a date (YYYY-MM-DD).") from None


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    *,
    request: Request,
    state: State,
    run_id: str,
    status: Annotated[str | None, Query(max_length=32)] = None,
    step: Annotated[str | None, Query(max_length=255)] = None,
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """One run: counts, duration, a timeline per step, and its calls failed-first."""
    run_id = run_id_or_404(run_id)

    def read(conn: Any) -> dict[str, Any] | None:
        run = queries.get_run(conn, run_id)
        if run is None:
            return None
        state.steps(conn, [run], cached_only=True)
        if run["steps"] is not None:
            live = _live(run)
            run["hist"] = state.histogram(conn, run, live["t0"], live["span"])
        page, cursor = queries.run_calls(
            conn, run_id, status=status or None, step=step or None, after=after, limit=RUN_PAGE
        )
        return {"run": run, "calls": page, "next": cursor}

    try:
        data = state.read(read)
    except queries.BadCursor as exc:
        raise HTTPException(400, str(exc)) from exc
    if data is None:
        raise not_found("run")
    return render(
        request,
        "run.html",
        filters={"status": status or "", "step": step or ""},
        after=after,
        **data,
        **_live(data["run"]),
    )


def _live(run: dict[str, Any]) -> dict[str, Any]:
    """Counts per status (summary, else the calls recorded so far) and the timeline scale."""
    if run["steps"] is None:
        return {"totals": run["totals"], "t0": run["started"], "span": 1.0}
    computed: dict[str, int] = {}
    for step in run["steps"]:
        for status, n in step["counts"].items():
            computed[status] = computed.get(status, 0) + n
    totals = dict(run["totals"]) if run["status"] != "running" and run["totals"] else computed
    end = run["finished"] or max(
        [s["last"] for s in run["steps"] if s["last"]] + [run["started"] + run["seconds"]]
    )
    return {"totals": totals, "t0": run["started"], "span": max(end - run["started"], 1e-6)}


@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
def run_live(request: Request, state: State, run_id: str) -> Response:
    """The counts and timeline fragment that htmx polls while a run is running."""
    run_id = run_id_or_404(run_id)

    def read(conn: Any) -> dict[str, Any] | None:
        run = queries.get_run(conn, run_id)
        if run is not None:
            state.steps(conn, [run])
            live = _live(run)
            run["hist"] = state.histogram(conn, run, live["t0"], live["span"])
        return run

    run = state.read(read)
    if run is None:
        raise not_found("run")
    return render(request, "_live.html", run=run, **_live(run))


@router.get("/runs/{run_id}/steps", response_class=HTMLResponse)
def run_steps(request: Request, state: State, run_id: str) -> Response:
    """A big run's per-step counts for the runs page (htmx loads it after the page)."""
    run_id = run_id_or_404(run_id)

    def read(conn: Any) -> dict[str, Any] | None:
        run = queries.get_run(conn, run_id)
        if run is not None:
            state.steps(conn, [run])
        return run

    run = state.read(read)
    if run is None:
        raise not_found("run")
    return render(request, "_steps.html", steps=run["steps"])


@router.get("/calls/{key}", response_class=HTMLResponse)
def call_page(request: Request, state: State, key: str) -> Response:
    """One call: parameters, inputs, outputs, error with traceback, output, provenance."""
    full = full_key(state, key)
    call = state.read(lambda c: queries.get_call(c, full))
    if call is None:
        raise not_found("call")
    log_file = full_log(state.source, call)
    return render(request, "call.html", call=call, log_file=log_file)


@router.get("/calls/{key}/log", response_class=Response)
def call_log(state: State, key: str) -> Response:
    """The call's whole log file from the store (text), when the engine kept one."""
    full = full_key(state, key)
    call = state.read(lambda c: queries.get_call(c, full))
    if call is None:
        raise not_found("call")
    log_file = full_log(state.source, call)
    if log_file is None:
        raise HTTPException(404, "No log file was kept for this call; see its page for the tail.")
    return Response(
        log_file.text(),
        media_type="text/plain; charset=utf-8",
        headers={"content-security-policy": "sandbox"},
    )


@router.get("/artifacts", response_class=HTMLResponse)
def artifacts_page(
    *,
    request: Request,
    state: State,
    prefix: Annotated[str | None, Query(max_length=1000)] = None,
    after: Annotated[str | None, Query(max_length=3000)] = None,
) -> Response:
    """Current artifacts by path, with a path-prefix filter."""
    try:
        page, cursor = state.read(
            lambda c: artifact_queries.list_artifacts(c, prefix=prefix or None, after=after)
        )
    except queries.BadCursor as exc:
        raise HTTPException(400, str(exc)) from exc
    return render(request, "artifacts.html", artifacts=page, next=cursor, prefix=prefix or "")


@router.get("/artifacts/{digest}", response_class=HTMLResponse)
def artifact_page(request: Request, state: State, digest: str) -> Response:
    """An artifact: record, OME metadata, thumbnail with pickers, table preview, download."""
    record = artifact_or_404(state, digest)
    record["consumers"] = state.read(lambda c: artifact_queries.consumers(c, record["hash"]))
    producer = None
    if record["key"]:
        producer = state.read(lambda c: queries.get_call(c, record["key"]))
    located, problem = None, None
    try:
        located = content.locate(state.source, record)
    except content.NotServable as exc:
        problem = str(exc)
    meta, table, image = dict(record["metadata"]), None, False
    if located is not None:
        image = images.is_image(located.format)
        if image:
            meta = _metadata(state, located, record)
        try:
            table = content.table_preview(located)
        except (OSError, ValueError) as exc:
            problem = f"Cannot preview the table: {exc}"
    return render(
        request,
        "artifact.html",
        art=record,
        producer=producer,
        located=located,
        problem=problem,
        meta=meta,
        axes=images.sizes(meta),
        table=table,
        image=image,
    )


def _metadata(state: UiState, located: content.Located, record: dict[str, Any]) -> dict[str, Any]:
    cached = state.metadata.get(record["hash"])
    if cached is None:
        cached = images.metadata_of(located, record["metadata"])
        state.metadata[record["hash"]] = cached
    return cached


@router.get("/artifacts/{digest}/preview", response_class=HTMLResponse)
def artifact_preview(
    *,
    request: Request,
    state: State,
    digest: str,
    c: Annotated[str | None, Query(max_length=8)] = None,
    z: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> Response:
    """The thumbnail fragment for the channel and z pickers (htmx swaps it in)."""
    record = artifact_or_404(state, digest)
    channel = int(c) if c and c.isdigit() else None
    return render(request, "_thumb.html", art=record, c=channel, z=z)


@router.get("/lineage/{digest}", response_class=HTMLResponse)
def lineage_page(
    *,
    request: Request,
    state: State,
    digest: str,
    up: Annotated[int, Query(ge=0, le=10)] = 2,
    down: Annotated[int, Query(ge=0, le=10)] = 2,
) -> Response:
    """The artifact's ancestors and descendants: an SVG by Graphviz, else a table."""
    record = artifact_or_404(state, digest)
    graph = state.read(lambda c: lineage.neighbourhood(c, record["hash"], up=up, down=down))
    svg = lineage.render_svg(graph) if state.graphviz else None
    nodes = {n["id"]: n for n in graph["nodes"]}
    return render(
        request, "lineage.html", art=record, graph=graph, svg=svg, nodes=nodes, up=up, down=down
    )


__all__ = ["router"]
