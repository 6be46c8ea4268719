"""Pages for spec pipelines (datums per capture) and plates (well grids, sites, report)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from databacked.ui import artifact_queries, content, plates
from databacked.ui.state import UiState, not_found, ui
from databacked.ui.templating import render

router = APIRouter(include_in_schema=False)
State = Annotated[UiState, Depends(ui)]
_WELL = re.compile(r"^[A-Pa-p]\d{1,2}$")


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines_page(request: Request, state: State) -> Response:
    """Spec pipelines: datums completed, datums failing, their captures."""
    found = state.read(plates.spec_pipelines)
    return render(request, "pipelines.html", pipelines=found)


@router.get("/pipelines/{name}", response_class=HTMLResponse)
def pipeline_page(
    *,
    request: Request,
    state: State,
    name: str,
    capture: Annotated[str | None, Query(max_length=100)] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """One spec pipeline: datum status per value of a capture, and its datums."""

    def read(conn: Any) -> dict[str, Any] | None:
        names = plates.captures(conn, name)
        page, cursor = plates.datums(conn, name, after=after)
        if not names and not page:
            return None
        chosen = capture if capture in names else (names[0] if names else None)
        groups = plates.per_capture(conn, name, chosen) if chosen else []
        return {"captures": names, "capture": chosen, "groups": groups, "datums": page,
                "next": cursor}  # fmt: skip

    data = state.read(read)
    if data is None:
        raise not_found("pipeline")
    return render(request, "pipeline.html", name=name, **data)


@router.get("/plates", response_class=HTMLResponse)
def plates_page(request: Request, state: State) -> Response:
    """Plates named by datum captures."""
    return render(request, "plates.html", plates=state.read(plates.plates))


@router.get("/plates/{name}", response_class=HTMLResponse)
def plate_page(
    *,
    request: Request,
    state: State,
    name: str,
    measure: Annotated[str | None, Query(max_length=200)] = None,
    well: Annotated[str | None, Query(max_length=3)] = None,
) -> Response:
    """A plate: a 96/384-well grid by status or a measurement, a well's sites, the report."""
    plate = state.read(lambda c: plates.plate(c, name))
    if not plate["wells"] and not plate["reducers"]:
        raise not_found("plate")
    tables, figures = [], []
    values: dict[str, dict[str, float]] = {}
    for out in plate["outputs"]:
        if out["format"] in ("csv", "parquet"):
            located = _located(state, out)
            if located is not None:
                frame = content.read_table(located)
                values.update(plates.measurements(frame))
                tables.append({**out, "preview": content.table_preview(located)})
        elif out["format"] in ("png", "ome-tiff", "tiff"):
            figures.append(out)
    chosen = measure if measure in values else None
    colours = plates.colour_scale(values[chosen]) if chosen else {}
    selected = None
    if well and _WELL.match(well):
        selected = plate["wells"].get(
            plates.well_name(ord(well[0].upper()) - 65, int(well[1:]) - 1)
        )
    sites = {}
    if selected is not None:
        keys = [d["key"] for d in selected["datums"]]
        sites = state.read(lambda c: plates.site_inputs(c, keys))
    return render(
        request,
        "plate.html",
        plate=plate,
        measures=sorted(values),
        measure=chosen,
        values=values.get(chosen, {}) if chosen else {},
        colours=colours,
        selected=selected,
        sites=sites,
        tables=tables,
        figures=figures,
        well_name=plates.well_name,
    )


def _located(state: UiState, out: dict[str, Any]) -> content.Located | None:
    record = state.read(lambda c: artifact_queries.find_artifact(c, out["hash"]))
    if record is None:
        return None
    try:
        return content.locate(state.source, record)
    except content.NotServable:
        return None


__all__ = ["router"]
