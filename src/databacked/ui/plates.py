"""Spec pipelines by their captures, and plates as 96/384-well grids.

A spec datum's call records its named captures (``params.attributes``); when they name a
plate and a well (``A01``) or a row and a column, the datums of a plate fill a well grid.
Queries filter on the JSON attributes in SQL, so a plate page reads only its own datums.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from typing import Any

import sqlalchemy as sa

from databacked.catalog.schema import artifacts, call_attempts, call_inputs, call_outputs, calls

_WELL = re.compile(r"^\s*([A-Pa-p])\s*0*(\d{1,2})\s*$")
ROWS_96, COLS_96 = 8, 12
ROWS_384, COLS_384 = 16, 24


def _attr(name: str) -> Any:
    return calls.c.params["attributes"][name].as_string()


def _is_datum() -> Any:
    return calls.c.params["slot"].as_string().is_not(None)


def spec_pipelines(conn: sa.Connection) -> list[dict[str, Any]]:
    """Each spec pipeline: datums completed, failed attempts, capture names, last activity."""
    query = (
        sa.select(calls.c.step, sa.func.count(), sa.func.max(calls.c.created))
        .where(_is_datum())
        .group_by(calls.c.step)
        .order_by(calls.c.step)
    )
    out = []
    for step, n, last in conn.execute(query):
        failed = conn.execute(
            sa.select(sa.func.count(sa.distinct(call_attempts.c.key))).where(
                call_attempts.c.step == step,
                call_attempts.c.status == "failed",
                ~sa.exists().where(calls.c.key == call_attempts.c.key),
            )
        ).scalar()
        out.append(
            {
                "name": step,
                "datums": n,
                "failed": int(failed or 0),
                "captures": captures(conn, step),
                "last": last,
            }
        )
    return out


def captures(conn: sa.Connection, pipeline: str) -> list[str]:
    """Attribute names of a pipeline's datums (from a sample of its calls)."""
    query = sa.select(calls.c.params).where(calls.c.step == pipeline, _is_datum()).limit(50)
    names: dict[str, None] = {}
    for params in conn.execute(query).scalars():
        for name in (params or {}).get("attributes") or {}:
            names[str(name)] = None
    return list(names)


def per_capture(conn: sa.Connection, pipeline: str, capture: str) -> list[dict[str, Any]]:
    """Datums completed per value of one capture, with their total and mean seconds."""
    value = _attr(capture)
    query = (
        sa.select(value, sa.func.count(), sa.func.avg(calls.c.seconds))
        .where(calls.c.step == pipeline, _is_datum())
        .group_by(value)
        .order_by(value)
    )
    return [
        {"value": v, "ran": n, "mean_seconds": float(s) if s is not None else None}
        for v, n, s in conn.execute(query)
    ]


def datums(
    conn: sa.Connection, pipeline: str, *, after: str | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], str | None]:
    """A pipeline's completed datums by key (keyset paged)."""
    query = sa.select(calls).where(calls.c.step == pipeline, _is_datum())
    if after:
        query = query.where(calls.c.key > after)
    rows = list(conn.execute(query.order_by(calls.c.key).limit(limit + 1)).mappings())
    page = [
        {
            "key": r["key"],
            "datum": (r["params"] or {}).get("datum"),
            "attributes": (r["params"] or {}).get("attributes") or {},
            "seconds": r["seconds"],
            "run_id": r["run_id"],
            "status": "ran",
        }
        for r in rows[:limit]
    ]
    return page, (rows[limit - 1]["key"] if len(rows) > limit else None)


def parse_well(attributes: dict[str, Any]) -> tuple[int, int] | None:
    """(row, column), 0-based, from ``well: A01`` or ``row``/``column`` attributes."""
    well = attributes.get("well")
    if well is not None:
        match = _WELL.match(str(well))
        if match:
            return ord(match[1].upper()) - ord("A"), int(match[2]) - 1
    row, col = attributes.get("row"), attributes.get("column", attributes.get("col"))
    if row is None or col is None:
        return None
    row_text = str(row).strip()
    if len(row_text) == 1 and row_text.isalpha():
        r = ord(row_text.upper()) - ord("A")
    elif row_text.isdigit():
        r = int(row_text) - 1
    else:
        return None
    return (r, int(col) - 1) if str(col).strip().isdigit() else None


def well_name(row: int, col: int) -> str:
    return f"{chr(ord('A') + row)}{col + 1:02d}"


def plates(conn: sa.Connection) -> list[dict[str, Any]]:
    """Plates named by datums: plate, pipelines that have datums of it, datum count."""
    plate = _attr("plate")
    query = (
        sa.select(plate, calls.c.step, sa.func.count())
        .where(_is_datum(), plate.is_not(None))
        .group_by(plate, calls.c.step)
        .order_by(plate, calls.c.step)
    )
    found: dict[str, dict[str, Any]] = {}
    for name, step, n in conn.execute(query):
        entry = found.setdefault(name, {"plate": name, "pipelines": {}})
        entry["pipelines"][step] = n
    return list(found.values())


def plate(conn: sa.Connection, name: str) -> dict[str, Any]:
    """One plate: wells (status, datums, sites), its reducer outputs, and the grid size."""
    query = sa.select(calls.c.key, calls.c.step, calls.c.params, calls.c.seconds).where(
        _is_datum(), _attr("plate") == name
    )
    wells: dict[str, dict[str, Any]] = {}
    reducers: list[dict[str, Any]] = []
    max_row = max_col = 0
    for key, step, params, seconds in conn.execute(query):
        attributes = (params or {}).get("attributes") or {}
        where = parse_well(attributes)
        if where is None:
            reducers.append({"key": key, "step": step, "attributes": attributes})
            continue
        r, c = where
        max_row, max_col = max(max_row, r), max(max_col, c)
        well = wells.setdefault(
            well_name(r, c),
            {"row": r, "col": c, "datums": [], "steps": Counter(), "seconds": 0.0},
        )
        well["datums"].append({"key": key, "step": step, "attributes": attributes})
        well["steps"][step] += 1
        well["seconds"] += float(seconds or 0.0)
    big = max_row >= ROWS_96 or max_col >= COLS_96
    rows, cols = (ROWS_384, COLS_384) if big else (ROWS_96, COLS_96)
    outputs = reducer_outputs(conn, [r["key"] for r in reducers])
    return {
        "plate": name,
        "rows": rows,
        "cols": cols,
        "wells": wells,
        "reducers": reducers,
        "outputs": outputs,
    }


def reducer_outputs(conn: sa.Connection, keys: list[str]) -> list[dict[str, Any]]:
    """Output artifacts of the plate-level calls (the report's table and plot)."""
    if not keys:
        return []
    query = (
        sa.select(call_outputs.c.key, call_outputs.c.name, artifacts)
        .join(
            artifacts,
            sa.and_(artifacts.c.loc == call_outputs.c.loc, artifacts.c.hash == call_outputs.c.hash),
        )
        .where(call_outputs.c.key.in_(keys))
        .order_by(call_outputs.c.name)
    )
    return [
        {"key": r["key"], "name": r["name"], "hash": r["hash"], "path": r["path"],
         "format": r["format"] or ""}
        for r in conn.execute(query).mappings()
    ]  # fmt: skip


def site_inputs(conn: sa.Connection, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """key -> the input files of each datum (its images), for site thumbnails."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not keys:
        return found
    query = (
        sa.select(call_inputs.c.key, call_inputs.c.hash, call_inputs.c.path)
        .where(call_inputs.c.key.in_(keys))
        .order_by(call_inputs.c.key, call_inputs.c.path)
    )
    for key, digest, path in conn.execute(query):
        found[key].append({"hash": digest, "path": path})
    return found


def measurements(frame: Any) -> dict[str, dict[str, float]]:
    """Numeric column -> well -> mean, from a table that has a ``well`` column."""
    import pandas as pd

    if "well" not in frame.columns:
        return {}
    numeric = [
        c for c in frame.columns
        if c != "well" and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]  # fmt: skip
    out: dict[str, dict[str, float]] = {}
    for column in numeric:
        means = frame.groupby(frame["well"].astype(str))[column].mean()
        out[str(column)] = {_normal_well(w): float(v) for w, v in means.items() if pd.notna(v)}
    return out


def _normal_well(text: str) -> str:
    match = _WELL.match(text)
    return well_name(ord(match[1].upper()) - ord("A"), int(match[2]) - 1) if match else text


def colour_scale(values: dict[str, float]) -> dict[str, str]:
    """well -> fill colour on a dark-blue-to-yellow ramp between the min and max value."""
    if not values:
        return {}
    low, high = min(values.values()), max(values.values())
    span = (high - low) or 1.0
    stops = [(0.0, (49, 54, 149)), (0.5, (116, 173, 209)), (1.0, (254, 224, 84))]
    out = {}
    for well, value in values.items():
        x = (value - low) / span
        for (x0, c0), (x1, c1) in itertools.pairwise(stops):
            if x <= x1:
                f = (x - x0) / (x1 - x0)
                rgb = [round(a + (b - a) * f) for a, b in zip(c0, c1, strict=True)]
                break
        out[well] = "#{:02x}{:02x}{:02x}".format(*rgb)
    return out


__all__ = [
    "captures",
    "colour_scale",
    "datums",
    "measurements",
    "parse_well",
    "per_capture",
    "plate",
    "plates",
    "site_inputs",
    "spec_pipelines",
    "well_name",
]
