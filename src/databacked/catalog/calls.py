"""Completed calls (the cache), failed attempts, and the lineage edges recorded with them.

``record`` writes a batch of calls with their output artifacts and input/output edges as four
executemany statements in the caller's transaction. Calls and input edges are
insert-or-ignore by key (at-least-once execution: the same key committed twice is harmless);
artifacts and output edges are upserts, so a re-run that rewrote a file refreshes its stamp
and the cache check keeps trusting it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from databacked.catalog.dml import chunks, dedupe, insert_ignore, upsert
from databacked.catalog.records import ArtifactRow, CallRecord, CallRow, InputRef
from databacked.catalog.schema import (
    artifacts,
    call_attempts,
    call_inputs,
    call_outputs,
    calls,
    location,
)
from databacked.secrets import redact, redact_text

_ARTIFACT_UPDATE = ("store", "path", "size", "format", "stamp", "metadata", "key", "created")


def field(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute ``name`` of an ArtifactRecord-like object, or item ``name`` of a dict."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def input_refs(value: Any, store: str) -> list[InputRef]:
    """The input artifacts of one argument as InputRefs (a hash, an InputRef, a record...)."""
    if isinstance(value, str | InputRef) or not isinstance(value, Sequence):
        value = [value]
    refs = []
    for item in value:
        if isinstance(item, str):
            refs.append(InputRef(hash=item))
            continue
        path = field(item, "path")
        item_store = field(item, "store") or (store if path is not None else None)
        refs.append(InputRef(hash=field(item, "hash"), path=path, store=item_store))
    return refs


def record(conn: sa.Connection, records: Sequence[CallRecord]) -> None:
    """Insert completed calls with their artifacts and edges (see the module docstring)."""
    now = time.time()
    call_rows, art_rows, out_rows, in_rows = [], [], [], []
    for call in records:
        seconds = None
        if call.started is not None and call.finished is not None:
            seconds = call.finished - call.started
        call_rows.append(
            {
                "key": call.key,
                "step": call.step,
                "fingerprint": call.fingerprint,
                "run_id": call.run_id,
                "params_hash": call.params_hash,
                "params": redact(dict(call.params)),
                "started": call.started,
                "finished": call.finished,
                "seconds": seconds,
                "host": call.host,
                "pid": call.pid,
                "stdout": redact_text(call.stdout),
                "stderr": redact_text(call.stderr),
                "log": redact_text(call.log),
                "created": now,
            }
        )
        for name, rec in call.outputs.items():
            store = field(rec, "store") or call.store
            path, digest = field(rec, "path"), field(rec, "hash")
            loc = location(store, path)
            art_rows.append(
                {
                    "loc": loc,
                    "hash": digest,
                    "store": store,
                    "path": path,
                    "size": field(rec, "size"),
                    "format": field(rec, "format"),
                    "stamp": field(rec, "stamp"),
                    "metadata": dict(field(rec, "metadata") or {}),
                    "key": call.key,
                    "created": now,
                }
            )
            out_rows.append(
                {"key": call.key, "name": name, "loc": loc, "store": store, "path": path}
                | {"hash": digest}
            )
        for name, value in call.inputs.items():
            for position, ref in enumerate(input_refs(value, call.store)):
                loc = location(ref.store, ref.path) if ref.path is not None and ref.store else None
                in_rows.append(
                    {
                        "key": call.key,
                        "name": name,
                        "position": position,
                        "loc": loc,
                        "store": ref.store,
                        "path": ref.path,
                        "hash": ref.hash,
                    }
                )
    dialect = conn.dialect.name
    batches = [
        (insert_ignore(dialect, calls), dedupe(call_rows, lambda r: r["key"])),
        (
            upsert(dialect, artifacts, _ARTIFACT_UPDATE),
            dedupe(art_rows, lambda r: (r["loc"], r["hash"])),
        ),
        (
            upsert(dialect, call_outputs, ("loc", "store", "path", "hash")),
            dedupe(out_rows, lambda r: (r["key"], r["name"])),
        ),
        (
            insert_ignore(dialect, call_inputs),
            dedupe(in_rows, lambda r: (r["key"], r["name"], r["position"])),
        ),
    ]
    for stmt, rows in batches:
        if rows:
            conn.execute(stmt, rows)


def record_attempts(conn: sa.Connection, records: Sequence[CallRecord]) -> None:
    """Append failed or skipped attempts to the history (never used as cache)."""
    rows = [
        {
            "key": call.key,
            "step": call.step,
            "run_id": call.run_id,
            "status": call.status if call.status != "ok" else "failed",
            "error_type": call.error_type,
            "error_message": redact_text(call.error_message),
            "traceback": redact_text(call.traceback),
            "stdout": redact_text(call.stdout),
            "stderr": redact_text(call.stderr),
            "log": redact_text(call.log),
            "started": call.started,
            "finished": call.finished,
            "host": call.host,
        }
        for call in records
    ]
    if rows:
        conn.execute(sa.insert(call_attempts), rows)


def record_artifacts(conn: sa.Connection, store: str, records: Sequence[Any]) -> None:
    """Upsert artifacts written outside any call (``db.save``): no producing key."""
    now = time.time()
    rows = [
        {
            "loc": location(field(rec, "store") or store, field(rec, "path")),
            "hash": field(rec, "hash"),
            "store": field(rec, "store") or store,
            "path": field(rec, "path"),
            "size": field(rec, "size"),
            "format": field(rec, "format"),
            "stamp": field(rec, "stamp"),
            "metadata": dict(field(rec, "metadata") or {}),
            "key": None,
            "created": now,
        }
        for rec in records
    ]
    if rows:
        stmt = upsert(conn.dialect.name, artifacts, _ARTIFACT_UPDATE)
        conn.execute(stmt, dedupe(rows, lambda r: (r["loc"], r["hash"])))


def _attempt_row(row: Mapping[str, Any]) -> CallRow:
    return CallRow(
        key=row["key"],
        step=row["step"],
        status=row["status"],
        run_id=row["run_id"],
        started=row["started"],
        finished=row["finished"],
        host=row["host"] or "",
        stdout=row["stdout"] or "",
        stderr=row["stderr"] or "",
        log=row["log"] or "",
        error_type=row["error_type"] or "",
        error_message=row["error_message"] or "",
        traceback=row["traceback"] or "",
    )


def last_failures(conn: sa.Connection, keys: Iterable[str]) -> dict[str, CallRow]:
    """The latest failed attempt of each key that has one (for the "previously failed" reason)."""
    found: dict[str, CallRow] = {}
    for chunk in chunks(sorted(set(keys))):
        query = (
            sa.select(call_attempts)
            .where(call_attempts.c.key.in_(chunk), call_attempts.c.status == "failed")
            .order_by(call_attempts.c.id)
        )
        for row in conn.execute(query).mappings():
            found[row["key"]] = _attempt_row(row)
    return found


def known_keys(conn: sa.Connection, keys: Iterable[str]) -> set[str]:
    """Those of ``keys`` the catalog holds a completed call or a recorded attempt of."""
    found: set[str] = set()
    for chunk in chunks(sorted(set(keys))):
        for table in (calls, call_attempts):
            query = sa.select(table.c.key).where(table.c.key.in_(chunk)).distinct()
            found.update(conn.execute(query).scalars())
    return found


def artifact_row(row: Mapping[str, Any]) -> ArtifactRow:
    """An ArtifactRow from a result row holding the artifacts table's columns."""
    return ArtifactRow(
        store=row["store"],
        path=row["path"],
        hash=row["hash"],
        size=row["size"],
        format=row["format"] or "",
        stamp=row["stamp"] or "",
        metadata=row["metadata"] or {},
        key=row["key"],
        created=row["created"],
    )


def _call_row(row: Mapping[str, Any], outputs: dict[str, ArtifactRow]) -> CallRow:
    return CallRow(
        key=row["key"],
        step=row["step"],
        status="ok",
        run_id=row["run_id"],
        fingerprint=row["fingerprint"] or "",
        params_hash=row["params_hash"] or "",
        params=row["params"] or {},
        started=row["started"],
        finished=row["finished"],
        seconds=row["seconds"],
        host=row["host"] or "",
        pid=row["pid"],
        stdout=row["stdout"] or "",
        stderr=row["stderr"] or "",
        log=row["log"] or "",
        created=row["created"],
        outputs=outputs,
    )


def _outputs_of(conn: sa.Connection, keys: Sequence[str]) -> dict[str, dict[str, ArtifactRow]]:
    query = (
        sa.select(
            call_outputs.c.key.label("call_key"),
            call_outputs.c.name.label("output"),
            *artifacts.c,
        )
        .join(
            artifacts,
            sa.and_(artifacts.c.loc == call_outputs.c.loc, artifacts.c.hash == call_outputs.c.hash),
        )
        .where(call_outputs.c.key.in_(keys))
    )
    found: dict[str, dict[str, ArtifactRow]] = {}
    for row in conn.execute(query).mappings():
        found.setdefault(row["call_key"], {})[row["output"]] = artifact_row(row)
    return found


def lookup(conn: sa.Connection, keys: Iterable[str], *, brief: bool = False) -> dict[str, CallRow]:
    """Completed calls by key, with their outputs; two queries per 500 keys. ``brief``:
    only key, step and outputs (what deciding a cache hit needs), without reading and
    decoding the output, logs and parameters of every call."""
    result: dict[str, CallRow] = {}
    for chunk in chunks(sorted(set(keys))):
        outputs = _outputs_of(conn, chunk)
        if brief:
            query = sa.select(calls.c.key, calls.c.step).where(calls.c.key.in_(chunk))
            for key, step in conn.execute(query):
                result[key] = CallRow(key=key, step=step, status="ok", outputs=outputs.get(key, {}))
            continue
        for row in conn.execute(sa.select(calls).where(calls.c.key.in_(chunk))).mappings():
            result[row["key"]] = _call_row(row, outputs.get(row["key"], {}))
    return result


def of_run(conn: sa.Connection, run_id: str) -> list[CallRow]:
    """Completed calls and failed/skipped attempts of one run, by start time."""
    completed = conn.execute(sa.select(calls).where(calls.c.run_id == run_id)).mappings().all()
    outputs: dict[str, dict[str, ArtifactRow]] = {}
    keys = [row["key"] for row in completed]
    for chunk in chunks(keys):
        outputs.update(_outputs_of(conn, chunk))
    rows = [_call_row(row, outputs.get(row["key"], {})) for row in completed]
    attempts = sa.select(call_attempts).where(call_attempts.c.run_id == run_id)
    rows.extend(_attempt_row(row) for row in conn.execute(attempts).mappings())
    rows.sort(key=lambda r: (r.started is None, r.started or 0.0, r.step, r.key))
    return rows


def find(
    conn: sa.Connection,
    *,
    key: str | None = None,
    step: str | None = None,
    failed: bool = False,
    limit: int = 20,
) -> list[CallRow]:
    """Calls and failed attempts by key prefix and/or step, newest first (for ``logs``)."""
    found: list[CallRow] = []
    tables = [call_attempts] if failed else [calls, call_attempts]
    for table in tables:
        query = sa.select(table)
        if key is not None:
            query = query.where(table.c.key.startswith(key, autoescape=True))
        if step is not None:
            query = query.where(table.c.step == step)
        if table is call_attempts:
            query = query.where(table.c.status == "failed")
        query = query.order_by(table.c.started.desc()).limit(limit)
        rows = conn.execute(query).mappings().all()
        if table is calls:
            found += [_call_row(row, {}) for row in rows]
        else:
            found += [_attempt_row(row) for row in rows]
    found.sort(key=lambda r: r.started or 0.0, reverse=True)
    return found[:limit]


def forget(conn: sa.Connection, *, step: str | None, key: str | None, before: float | None) -> int:
    """Drop completed calls (and their edges) matching all given filters; the count dropped."""
    query = sa.select(calls.c.key)
    if step is not None:
        query = query.where(calls.c.step == step)
    if key is not None:
        # A short key (as the CLI prints them) is a prefix.
        query = query.where(calls.c.key.startswith(key, autoescape=True))
    if before is not None:
        query = query.where(calls.c.created < before)
    keys = list(conn.execute(query).scalars())
    for chunk in chunks(keys):
        for table in (call_outputs, call_inputs, calls):
            conn.execute(sa.delete(table).where(table.c.key.in_(chunk)))
    return len(keys)


__all__ = [
    "artifact_row",
    "field",
    "forget",
    "input_refs",
    "known_keys",
    "last_failures",
    "lookup",
    "of_run",
    "record",
    "record_artifacts",
    "record_attempts",
]
