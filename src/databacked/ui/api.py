"""The JSON API under ``/api/``: what the pages show, for scripts (OpenAPI at /openapi.json)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from databacked.ui import artifact_queries, content, images, lineage, queries
from databacked.ui.state import (
    UiState,
    artifact_or_404,
    full_key,
    located_or_404,
    not_found,
    run_id_or_404,
    ui,
)

router = APIRouter(prefix="/api", tags=["api"])
State = Annotated[UiState, Depends(ui)]


class Problem(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 400: {"model": Problem}}


class Run(BaseModel):
    id: str
    pipeline: str
    status: str
    started: float
    finished: float | None
    seconds: float
    host: str
    user: str
    pid: int | None
    git_commit: str | None
    git_dirty: bool | None
    python: str
    packages: dict[str, Any]
    config: dict[str, Any]
    totals: dict[str, int] = Field(description="Calls per status from the run's summary.")


class StepCounts(BaseModel):
    step: str
    counts: dict[str, int]
    first: float | None
    last: float | None
    busy: float


class RunListItem(Run):
    steps: list[StepCounts]


class RunsPage(BaseModel):
    runs: list[RunListItem]
    next: str | None = Field(description="Pass as ?before= for the next, older page.")


class RunDetail(Run):
    steps: list[StepCounts]


class Call(BaseModel):
    key: str
    step: str
    status: str
    run_id: str | None
    reason: str
    seconds: float | None
    started: float | None
    finished: float | None
    host: str
    error: str
    attempt: int | None


class CallsPage(BaseModel):
    calls: list[Call]
    next: str | None = Field(description="Pass as ?after= for the next page.")


class Artifact(BaseModel):
    hash: str
    store: str | None
    path: str | None
    size: int | None
    format: str
    stamp: str | None
    metadata: dict[str, Any]
    key: str | None
    created: float | None


class ArtifactsPage(BaseModel):
    artifacts: list[Artifact]
    next: str | None


class Location(BaseModel):
    store: str | None
    path: str | None
    stamp: str | None


class ArtifactDetail(Artifact):
    locations: list[Location]
    consumers: list[dict[str, Any]]


class CallInput(BaseModel):
    name: str
    position: int
    hash: str
    path: str | None
    store: str | None
    known: bool


class CallOutput(Artifact):
    name: str


class Attempt(Call):
    error_type: str
    error_message: str
    traceback: str
    stdout: str
    stderr: str


class CallDetail(Call):
    fingerprint: str
    params: dict[str, Any]
    pid: int | None
    stdout: str
    stderr: str
    error_type: str
    error_message: str
    traceback: str
    log_path: str | None
    inputs: list[CallInput]
    outputs: list[CallOutput]
    attempts: list[Attempt]
    run: Run | None


class Node(BaseModel):
    id: str
    kind: str
    path: str | None = None
    step: str | None = None
    status: str | None = None


class Edge(BaseModel):
    source: str
    target: str


class Lineage(BaseModel):
    focus: str
    nodes: list[Node]
    edges: list[Edge]
    truncated: bool


def epoch_of_day(day: date | None, end: bool = False) -> float | None:
    if day is None:
        return None
    try:
        moment = datetime.combine(day, datetime.min.time())
        return moment.timestamp() + (86400 if end else 0)
    except (OverflowError, ValueError, OSError):  # years the platform clock cannot hold
        return None


@router.get("/runs", response_model=RunsPage, responses=ERRORS)
def runs(
    *,
    state: State,
    status: Annotated[str | None, Query(max_length=32)] = None,
    pipeline: Annotated[str | None, Query(max_length=255)] = None,
    since: date | None = None,
    until: date | None = None,
    before: Annotated[str | None, Query(max_length=200, pattern=queries.RUN_CURSOR)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = queries.PAGE,
) -> dict[str, Any]:
    """Runs, newest first, filtered; ``next`` pages back in time (keyset)."""

    def read(conn: Any) -> dict[str, Any]:
        page, older, _ = queries.list_runs(
            conn,
            status=status,
            pipeline=pipeline,
            since=epoch_of_day(since),
            until=epoch_of_day(until, end=True),
            before=before,
            limit=limit,
        )
        state.steps(conn, page)
        return {"runs": page, "next": older}

    return _bad_cursor(state, read)


def _bad_cursor(state: UiState, fn: Any) -> Any:
    try:
        return state.read(fn)
    except queries.BadCursor as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("/runs/{run_id}", response_model=RunDetail, responses=ERRORS)
def run(state: State, run_id: str) -> dict[str, Any]:
    """One run: provenance, totals, and per step its counts and first/last times."""
    run_id = run_id_or_404(run_id)

    def read(conn: Any) -> dict[str, Any] | None:
        found = queries.get_run(conn, run_id)
        if found is not None:
            state.steps(conn, [found])
        return found

    found = state.read(read)
    if found is None:
        raise not_found("run")
    return found


@router.get("/runs/{run_id}/calls", response_model=CallsPage, responses=ERRORS)
def run_calls(
    *,
    state: State,
    run_id: str,
    status: Annotated[str | None, Query(max_length=32)] = None,
    step: Annotated[str | None, Query(max_length=255)] = None,
    after: Annotated[str | None, Query(max_length=200, pattern=queries.CALL_CURSOR)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = queries.PAGE,
) -> dict[str, Any]:
    """A run's calls: failed first, then skipped, then completed; slowest first in each."""
    run_id = run_id_or_404(run_id)

    def read(conn: Any) -> dict[str, Any] | None:
        if queries.get_run(conn, run_id) is None:
            return None
        page, cursor = queries.run_calls(
            conn, run_id, status=status, step=step, after=after, limit=limit
        )
        return {"calls": page, "next": cursor}

    found = _bad_cursor(state, read)
    if found is None:
        raise not_found("run")
    return found


@router.get("/calls/{key}", response_model=CallDetail, responses=ERRORS)
def call(state: State, key: str) -> dict[str, Any]:
    """One call by key (or a unique prefix): parameters, inputs, outputs, output, error."""
    full = full_key(state, key)
    found = state.read(lambda c: queries.get_call(c, full))
    if found is None:
        raise not_found("call")
    return found


@router.get("/artifacts", response_model=ArtifactsPage, responses=ERRORS)
def artifacts(
    *,
    state: State,
    prefix: Annotated[str | None, Query(max_length=1000)] = None,
    after: Annotated[
        str | None, Query(max_length=2100, pattern=artifact_queries.PATH_CURSOR)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = queries.PAGE,
) -> dict[str, Any]:
    """Current artifacts (latest version of each path), by path."""

    def read(conn: Any) -> dict[str, Any]:
        page, cursor = artifact_queries.list_artifacts(
            conn, prefix=prefix, after=after, limit=limit
        )
        return {"artifacts": page, "next": cursor}

    return _bad_cursor(state, read)


@router.get("/artifacts/{digest}", response_model=ArtifactDetail, responses=ERRORS)
def artifact(state: State, digest: str) -> dict[str, Any]:
    """An artifact by content hash (or a unique prefix): record, locations, consumers."""
    record = artifact_or_404(state, digest)
    record["consumers"] = state.read(lambda c: artifact_queries.consumers(c, record["hash"]))
    return record


PNG = {200: {"content": {"image/png": {}}, "description": "A PNG thumbnail."}, **ERRORS}


@router.get("/artifacts/{digest}/thumbnail.png", response_class=Response, responses=PNG)
def thumbnail(
    *,
    state: State,
    digest: str,
    c: Annotated[int | None, Query(ge=0, le=1024, description="Channel; all when absent.")] = None,
    z: Annotated[
        int | None, Query(ge=0, le=100_000, description="Z plane; middle when absent.")
    ] = None,
    t: Annotated[int, Query(ge=0, le=100_000)] = 0,
    size: Annotated[int, Query(ge=16, le=1024)] = 256,
) -> Response:
    """A PNG of one plane of an image artifact, contrast-stretched per channel."""
    record = artifact_or_404(state, digest)
    key = (record["hash"], c, z, t, size)
    data = state.thumbnails.get(key)
    if data is None:
        located = located_or_404(state, record)
        try:
            data = images.render(located, c=c, z=z, t=t, size=size)
        except images.NotAnImage as exc:
            raise HTTPException(404, str(exc)) from exc
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise HTTPException(404, f"Cannot render {located.path}: {exc}") from exc
        state.thumbnails.put(key, data)
    return Response(
        data,
        media_type="image/png",
        headers={"cache-control": "public, max-age=31536000, immutable"},
    )


BYTES = {200: {"content": {"application/octet-stream": {}}, "description": "The bytes."}, **ERRORS}


@router.get("/artifacts/{digest}/content", response_class=Response, responses=BYTES)
def download(state: State, digest: str) -> Response:
    """The artifact's bytes as an attachment (an OME-Zarr folder as a zip)."""
    record = artifact_or_404(state, digest)
    located = located_or_404(state, record)
    name = located.name + (".zip" if located.directory else "")
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name) or "artifact"
    from urllib.parse import quote

    headers = {
        "content-disposition": f"attachment; filename=\"{safe}\"; filename*=utf-8''{quote(name)}",
        "content-security-policy": "sandbox",
        "cache-control": "private, max-age=31536000, immutable",
    }
    if located.size is not None and not located.directory:
        headers["content-length"] = str(located.size)
    try:
        body = content.stream(located)
    except content.NotServable as exc:
        raise HTTPException(404, str(exc)) from exc
    return StreamingResponse(body, media_type="application/octet-stream", headers=headers)


@router.get("/lineage/{digest}", response_model=Lineage, responses=ERRORS)
def lineage_of(
    *,
    state: State,
    digest: str,
    up: Annotated[int, Query(ge=0, le=10)] = 2,
    down: Annotated[int, Query(ge=0, le=10)] = 2,
) -> dict[str, Any]:
    """Ancestors and descendants of an artifact within ``up``/``down`` calls."""
    record = artifact_or_404(state, digest)
    return state.read(lambda c: lineage.neighbourhood(c, record["hash"], up=up, down=down))


__all__ = ["router"]
