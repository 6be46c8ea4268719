"""The UI's reads of the catalog: runs, a run's calls, one call, and artifacts by hash.

Every list is paged by keyset (a cursor naming the last row shown), never by OFFSET, so the
100,000th call costs what the first does. Rows come back as plain dicts, ready for JSON and
templates. Columns other helpers add to the tables (a log path, a reason) pass through.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from databacked.catalog.schema import (
    artifacts,
    call_attempts,
    call_inputs,
    call_outputs,
    calls,
    runs,
)
from databacked.config import redact
from databacked.errors import DatabackedError

PAGE = 100
"""Rows per page of every list."""

_FLOAT = r"-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?"
RUN_CURSOR = rf"^{_FLOAT}~[0-9a-zA-Z]{{1,64}}$"
CALL_CURSOR = rf"^[0-2]~{_FLOAT}~[0-9a-zA-Z]{{1,64}}$"
"""What the cursors this UI writes look like (the API's parameter patterns)."""

STATUS_RANK = {"failed": 0, "skipped": 1, "ran": 2}


class BadCursor(DatabackedError, ValueError):
    """A paging cursor that this UI did not write."""


def _seconds(row: Mapping[str, Any]) -> float | None:
    if row.get("seconds") is not None:
        return float(row["seconds"])
    if row.get("started") is not None and row.get("finished") is not None:
        return float(row["finished"]) - float(row["started"])
    return None


# -- runs ---------------------------------------------------------------------------------


def run_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A run row as the UI shows it: totals from its summary, duration, provenance."""
    summary = row.get("summary") or {}
    finished = row.get("finished")
    return {
        "id": row["id"],
        "pipeline": row["pipeline"],
        "status": row["status"],
        "started": row["started"],
        "finished": finished,
        "seconds": (finished - row["started"]) if finished else time.time() - row["started"],
        "host": row.get("host") or "",
        "user": row.get("user") or "",
        "pid": row.get("pid"),
        "git_commit": row.get("git_commit"),
        "git_dirty": row.get("git_dirty"),
        "python": row.get("python") or "",
        "packages": row.get("packages") or {},
        "config": redact(row.get("config") or {}),
        "totals": summary_totals(summary),
        "summary_steps": summary.get("steps") if isinstance(summary.get("steps"), dict) else {},
    }


def summary_totals(summary: Mapping[str, Any]) -> dict[str, int]:
    """Calls per status from a run summary (engine: flat counts; specs: per pipeline)."""
    totals: dict[str, int] = {}
    counts = summary.get("counts", summary)
    for key, value in (counts or {}).items():
        if isinstance(value, int):
            totals[key] = totals.get(key, 0) + value
        elif isinstance(value, Mapping):
            for status, n in value.items():
                if isinstance(n, int):
                    totals[status] = totals.get(status, 0) + n
    return {k: v for k, v in totals.items() if v}


def encode_run_cursor(row: Mapping[str, Any]) -> str:
    return f"{row['started']!r}~{row['id']}"


def _decode_run_cursor(cursor: str) -> tuple[float, str]:
    started, sep, run_id = cursor.partition("~")
    try:
        if not sep or not run_id.isalnum():
            raise ValueError(cursor)
        return float(started), run_id
    except ValueError:
        raise BadCursor(f"The page cursor {cursor!r} is not one this UI wrote.") from None


def list_runs(
    conn: sa.Connection,
    *,
    status: str | None = None,
    pipeline: str | None = None,
    since: float | None = None,
    until: float | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: int = PAGE,
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """Runs newest first: (page, cursor of the next older page, cursor of the newer page)."""
    query = sa.select(runs)
    if status:
        query = query.where(runs.c.status == status)
    if pipeline:
        query = query.where(runs.c.pipeline == pipeline)
    if since is not None:
        query = query.where(runs.c.started >= since)
    if until is not None:
        query = query.where(runs.c.started < until)
    newest_first = after is None
    if before:
        started, run_id = _decode_run_cursor(before)
        query = query.where(
            sa.or_(runs.c.started < started, sa.and_(runs.c.started == started, runs.c.id < run_id))
        )
    if after:
        started, run_id = _decode_run_cursor(after)
        query = query.where(
            sa.or_(runs.c.started > started, sa.and_(runs.c.started == started, runs.c.id > run_id))
        )
    order = (
        (runs.c.started.desc(), runs.c.id.desc())
        if newest_first
        else (runs.c.started.asc(), runs.c.id.asc())
    )
    rows = list(conn.execute(query.order_by(*order).limit(limit + 1)).mappings())
    more = len(rows) > limit
    rows = rows[:limit]
    if not newest_first:
        rows.reverse()
    page = [run_dict(r) for r in rows]
    older = encode_run_cursor(rows[-1]) if rows and (more or not newest_first) else None
    newer = encode_run_cursor(rows[0]) if rows and (before or (after and more)) else None
    return page, older, newer


def pipelines(conn: sa.Connection) -> list[str]:
    """Names runs were recorded under, for the filter."""
    return sorted(conn.execute(sa.select(runs.c.pipeline).distinct()).scalars())


def get_run(conn: sa.Connection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
    return run_dict(row) if row is not None else None


def step_counts(conn: sa.Connection, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """run id -> step -> {counts: {status: n}, first, last, seconds}: two GROUP BY queries."""
    ids = list(run_ids)
    out: dict[str, dict[str, Any]] = {r: {} for r in ids}
    if not ids:
        return out
    done = (
        sa.select(
            calls.c.run_id,
            calls.c.step,
            sa.literal("ran").label("status"),
            sa.func.count().label("n"),
            sa.func.min(calls.c.started).label("first"),
            sa.func.max(calls.c.finished).label("last"),
            sa.func.sum(calls.c.seconds).label("busy"),
        )
        .where(calls.c.run_id.in_(ids))
        .group_by(calls.c.run_id, calls.c.step)
    )
    tried = (
        sa.select(
            call_attempts.c.run_id,
            call_attempts.c.step,
            call_attempts.c.status,
            sa.func.count().label("n"),
            sa.func.min(call_attempts.c.started).label("first"),
            sa.func.max(call_attempts.c.finished).label("last"),
            sa.func.sum(call_attempts.c.finished - call_attempts.c.started).label("busy"),
        )
        .where(call_attempts.c.run_id.in_(ids))
        .group_by(call_attempts.c.run_id, call_attempts.c.step, call_attempts.c.status)
    )
    for query in (done, tried):
        for row in conn.execute(query).mappings():
            step = out[row["run_id"]].setdefault(
                row["step"], {"counts": {}, "first": None, "last": None, "busy": 0.0}
            )
            step["counts"][row["status"]] = step["counts"].get(row["status"], 0) + row["n"]
            step["busy"] += float(row["busy"] or 0.0)
            if row["first"] is not None:
                step["first"] = min(x for x in (step["first"], row["first"]) if x is not None)
            if row["last"] is not None:
                step["last"] = max(x for x in (step["last"], row["last"]) if x is not None)
    # Steps in the order they started, which is the pipeline's order for a DAG.
    return {
        run: dict(
            sorted(steps.items(), key=lambda kv: (kv[1]["first"] is None, kv[1]["first"] or 0))
        )
        for run, steps in out.items()
    }


def step_histogram(
    conn: sa.Connection, run_id: str, t0: float, span: float, bins: int = 60
) -> dict[str, list[int]]:
    """step -> calls started in each of ``bins`` equal slices of [t0, t0 + span]."""
    out: dict[str, list[int]] = {}
    for table in (calls, call_attempts):
        slot = sa.cast((table.c.started - t0) * (bins / span), sa.Integer).label("slot")
        query = (
            sa.select(table.c.step, slot, sa.func.count())
            .where(table.c.run_id == run_id, table.c.started.is_not(None))
            .group_by(table.c.step, slot)
        )
        for step, where, n in conn.execute(query):
            counts = out.setdefault(step, [0] * bins)
            counts[min(max(int(where or 0), 0), bins - 1)] += n
    return out


# -- a run's calls ------------------------------------------------------------------------


def _attempt_seconds() -> Any:
    return sa.func.coalesce(call_attempts.c.finished - call_attempts.c.started, -1.0)


def _call_seconds() -> Any:
    return sa.func.coalesce(calls.c.seconds, -1.0)


def _decode_call_cursor(cursor: str) -> tuple[int, float, str]:
    try:
        rank, seconds, tie = cursor.split("~", 2)
        if int(rank) not in STATUS_RANK.values() or not tie.isalnum():
            raise ValueError(cursor)
        return int(rank), float(seconds), tie
    except ValueError:
        raise BadCursor(f"The page cursor {cursor!r} is not one this UI wrote.") from None


def call_dict(row: Mapping[str, Any], status: str) -> dict[str, Any]:
    """One call (completed) or attempt (failed/skipped) for tables and JSON."""
    message = row.get("error_message") or ""
    error = f"{row.get('error_type')}: {message}" if row.get("error_type") else message
    return {
        "key": row["key"],
        "step": row["step"],
        "status": status,
        "run_id": row.get("run_id"),
        "reason": row.get("reason") or (row.get("error_type") or "" if status == "failed" else ""),
        "seconds": _seconds(row),
        "started": row.get("started"),
        "finished": row.get("finished"),
        "host": row.get("host") or "",
        "error": error.strip().splitlines()[0][:300] if error.strip() else "",
        "attempt": row.get("id") if status != "ran" else None,
    }


def run_calls(
    conn: sa.Connection,
    run_id: str,
    *,
    status: str | None = None,
    step: str | None = None,
    after: str | None = None,
    limit: int = PAGE,
) -> tuple[list[dict[str, Any]], str | None]:
    """A run's calls, failed first, then skipped, then completed; slowest first in each."""
    start = _decode_call_cursor(after) if after else (0, float("inf"), "")
    page: list[dict[str, Any]] = []
    for name, rank in STATUS_RANK.items():
        if rank < start[0] or (status and status != name) or len(page) > limit:
            continue
        bound = start[1:] if rank == start[0] else (float("inf"), "")
        page += _calls_phase(
            conn, run_id, status=name, step=step, bound=bound, limit=limit + 1 - len(page)
        )
    more = len(page) > limit
    page = page[:limit]
    cursor = None
    if more and page:
        last = page[-1]
        tie = last["key"] if last["status"] == "ran" else f"{last['attempt']:020d}"
        sec = last["seconds"] if last["seconds"] is not None else -1.0
        cursor = f"{STATUS_RANK[last['status']]}~{sec!r}~{tie}"
    return page, cursor


def _calls_phase(
    conn: sa.Connection,
    run_id: str,
    *,
    status: str,
    step: str | None,
    bound: tuple[float, str],
    limit: int,
) -> list[dict[str, Any]]:
    seconds_bound, tie = bound
    if status == "ran":
        table, sec, tie_col = calls, _call_seconds(), calls.c.key
        query = sa.select(calls).where(calls.c.run_id == run_id)
    else:
        table, sec = call_attempts, _attempt_seconds()
        tie_col = call_attempts.c.id
        query = sa.select(call_attempts).where(call_attempts.c.run_id == run_id)
        if status == "failed":
            query = query.where(call_attempts.c.status == "failed")
        else:
            query = query.where(call_attempts.c.status != "failed")
    if step:
        query = query.where(table.c.step == step)
    if seconds_bound != float("inf"):
        # A cursor's tie-break is a key for calls, an attempt id for attempts.
        tie_value: Any = tie if status == "ran" else (int(tie) if tie.isdigit() else 0)
        query = query.where(
            sa.or_(sec < seconds_bound, sa.and_(sec == seconds_bound, tie_col > tie_value))
        )
    query = query.order_by(sec.desc(), tie_col.asc()).limit(limit)
    rows = conn.execute(query).mappings()
    return [call_dict(r, "ran" if status == "ran" else r["status"]) for r in rows]


# -- one call -----------------------------------------------------------------------------


def resolve_key(conn: sa.Connection, key: str) -> str | None:
    """A full key from a key or a unique prefix of at least 6 characters."""
    for table in (calls, call_attempts):
        query = sa.select(table.c.key).where(table.c.key.startswith(key, autoescape=True))
        found = set(conn.execute(query.distinct().limit(2)).scalars())
        if len(found) == 1:
            return found.pop()
        if found:
            return None
    return None


def get_call(conn: sa.Connection, key: str) -> dict[str, Any] | None:
    """A call: its completed row (if any), every attempt, inputs, outputs and its run."""
    done = conn.execute(sa.select(calls).where(calls.c.key == key)).mappings().first()
    tries = list(
        conn.execute(
            sa.select(call_attempts).where(call_attempts.c.key == key).order_by(call_attempts.c.id)
        ).mappings()
    )
    if done is None and not tries:
        return None
    latest = done if done is not None else tries[-1]
    status = "ran" if done is not None else tries[-1]["status"]
    call = call_dict(latest, status)
    call["attempts"] = [call_dict(t, t["status"]) for t in tries]
    for t, row in zip(call["attempts"], tries, strict=True):
        t["error_type"] = row["error_type"] or ""
        t["error_message"] = row["error_message"] or ""
        t["traceback"] = row["traceback"] or ""
        t["stdout"] = row["stdout"] or ""
        t["stderr"] = row["stderr"] or ""
    call["fingerprint"] = (done or {}).get("fingerprint") or ""
    call["params"] = redact(latest.get("params") or {})
    call["pid"] = latest.get("pid")
    call["stdout"] = latest.get("stdout") or ""
    call["stderr"] = latest.get("stderr") or ""
    call["error_type"] = latest.get("error_type") or ""
    call["error_message"] = latest.get("error_message") or ""
    call["traceback"] = latest.get("traceback") or ""
    call["log_path"] = latest.get("log_path") or latest.get("log") or None
    call["inputs"] = _inputs(conn, key)
    call["outputs"] = _outputs(conn, key)
    run = get_run(conn, call["run_id"]) if call["run_id"] else None
    call["run"] = run
    return call


def _inputs(conn: sa.Connection, key: str) -> list[dict[str, Any]]:
    query = (
        sa.select(call_inputs)
        .where(call_inputs.c.key == key)
        .order_by(call_inputs.c.name, call_inputs.c.position)
    )
    rows = list(conn.execute(query).mappings())
    known = _known_hashes(conn, {r["hash"] for r in rows})
    return [
        {
            "name": r["name"],
            "position": r["position"],
            "hash": r["hash"],
            "path": r["path"],
            "store": r["store"],
            "known": r["hash"] in known,
        }
        for r in rows
    ]


def _known_hashes(conn: sa.Connection, hashes: set[str]) -> set[str]:
    if not hashes:
        return set()
    query = sa.select(artifacts.c.hash).where(artifacts.c.hash.in_(sorted(hashes)))
    return set(conn.execute(query).scalars())


def _outputs(conn: sa.Connection, key: str) -> list[dict[str, Any]]:
    query = (
        sa.select(call_outputs.c.name, artifacts)
        .join(
            artifacts,
            sa.and_(artifacts.c.loc == call_outputs.c.loc, artifacts.c.hash == call_outputs.c.hash),
        )
        .where(call_outputs.c.key == key)
        .order_by(call_outputs.c.name)
    )
    return [
        {
            "name": r["name"],
            **{k: r[k] for k in ("hash", "store", "path", "size", "key", "created")},
            "format": r["format"] or "",
            "stamp": r["stamp"] or "",
            "metadata": r["metadata"] or {},
        }
        for r in conn.execute(query).mappings()
    ]


__all__ = [
    "PAGE",
    "BadCursor",
    "call_dict",
    "get_call",
    "get_run",
    "list_runs",
    "pipelines",
    "resolve_key",
    "run_calls",
    "run_dict",
    "step_counts",
    "step_histogram",
    "summary_totals",
]
