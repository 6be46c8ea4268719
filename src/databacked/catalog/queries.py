"""Runs, artifacts, lineage, the input-file stat cache and transform fingerprints: what the
CLI and the planner read."""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from databacked.catalog.calls import artifact_row, lookup
from databacked.catalog.dml import chunks, dedupe, upsert
from databacked.catalog.records import ArtifactRow, InputRef, LineageRow, RunRow
from databacked.catalog.schema import (
    artifacts,
    call_inputs,
    call_outputs,
    code_fingerprints,
    file_stats,
    location,
    runs,
)

LINEAGE_LIMIT = 10_000
"""Most rows ``lineage`` returns: a guard against enormous fan-in histories."""


# -- runs ---------------------------------------------------------------------------------


def start_run(conn: sa.Connection, info: Mapping[str, Any]) -> str:
    """Insert a run in status ``running``; its id (uuid hex)."""
    run_id = uuid.uuid4().hex
    git = info.get("git") or {}
    if isinstance(git, str):
        git = {"commit": git}
    conn.execute(
        sa.insert(runs).values(
            id=run_id,
            pipeline=str(info.get("pipeline", "")),
            status="running",
            started=float(info.get("started") or time.time()),
            host=info.get("host"),
            user=info.get("user"),
            pid=info.get("pid"),
            git_commit=info.get("git_commit", git.get("commit")),
            git_dirty=info.get("git_dirty", git.get("dirty")),
            python=info.get("python"),
            packages=dict(info.get("packages") or info.get("versions") or {}),
            config=dict(info.get("config") or {}),
            summary={},
        )
    )
    return run_id


def finish_run(conn: sa.Connection, run_id: str, status: str, summary: Mapping[str, Any]) -> None:
    """Set a run's final status, end time and summary."""
    conn.execute(
        sa.update(runs)
        .where(runs.c.id == run_id)
        .values(status=status, finished=time.time(), summary=dict(summary))
    )


def recent_runs(conn: sa.Connection, limit: int) -> list[RunRow]:
    """The latest runs, newest first."""
    query = sa.select(runs).order_by(runs.c.started.desc()).limit(limit)
    return [
        RunRow(
            id=row["id"],
            pipeline=row["pipeline"],
            status=row["status"],
            started=row["started"],
            finished=row["finished"],
            host=row["host"] or "",
            user=row["user"] or "",
            pid=row["pid"],
            git_commit=row["git_commit"],
            git_dirty=row["git_dirty"],
            python=row["python"] or "",
            packages=row["packages"] or {},
            config=row["config"] or {},
            summary=row["summary"] or {},
        )
        for row in conn.execute(query).mappings()
    ]


# -- artifacts ----------------------------------------------------------------------------


def artifact_by_path(conn: sa.Connection, store: str, path: str) -> ArtifactRow | None:
    """The latest recorded version of the bytes at ``path`` in ``store``."""
    query = (
        sa.select(artifacts)
        .where(artifacts.c.loc == location(store, path))
        .order_by(artifacts.c.created.desc())
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    return artifact_row(row) if row is not None else None


def current_artifacts(
    conn: sa.Connection, store: str | None, prefix: str | None
) -> list[ArtifactRow]:
    """The latest version of every known path, sorted by store and path."""
    query = sa.select(artifacts).order_by(artifacts.c.created)
    if store is not None:
        query = query.where(artifacts.c.store == store)
    if prefix:
        query = query.where(artifacts.c.path.startswith(prefix, autoescape=True))
    latest = {row["loc"]: row for row in conn.execute(query).mappings()}
    return sorted((artifact_row(row) for row in latest.values()), key=lambda a: (a.store, a.path))


def referenced_paths(conn: sa.Connection, store: str) -> set[str]:
    """Paths gc must keep: outputs of completed calls, and artifacts saved outside pipelines."""
    outputs = sa.select(call_outputs.c.path).where(call_outputs.c.store == store)
    saved = sa.select(artifacts.c.path).where(artifacts.c.store == store, artifacts.c.key.is_(None))
    return set(conn.execute(outputs).scalars()) | set(conn.execute(saved).scalars())


def lineage(conn: sa.Connection, store: str, path: str) -> list[LineageRow]:
    """How a file was made: its artifact, the call that made it, that call's inputs, and so on.

    Breadth first; each row names the producing call (``None`` for a source file) and its
    inputs, which appear again one level deeper. A call reached twice is expanded once.
    """
    start = artifact_by_path(conn, store, path)
    if start is None:
        return []
    queue: deque[tuple[int, InputRef, str | None, str | None]] = deque(
        [(0, InputRef(hash=start.hash, path=start.path, store=start.store), None, None)]
    )
    expanded: set[str] = set()
    rows: list[LineageRow] = []
    while queue and len(rows) < LINEAGE_LIMIT:
        depth, ref, parent, argument = queue.popleft()
        key = _producer(conn, ref)
        call = lookup(conn, [key]).get(key) if key else None
        inputs = _inputs_of(conn, key) if call is not None else ()
        rows.append(
            LineageRow(
                depth=depth,
                hash=ref.hash,
                path=ref.path,
                store=ref.store,
                call=call,
                inputs=tuple(ref for _, ref in inputs),
                parent=parent,
                argument=argument,
            )
        )
        if call is not None and call.key not in expanded:
            expanded.add(call.key)
            queue.extend((depth + 1, inp, call.key, name) for name, inp in inputs)
    return rows


def _producer(conn: sa.Connection, ref: InputRef) -> str | None:
    """Key of a completed call whose output is these bytes (at this location when known)."""
    query = sa.select(call_outputs.c.key).where(call_outputs.c.hash == ref.hash)
    if ref.path is not None and ref.store:
        at_loc = query.where(call_outputs.c.loc == location(ref.store, ref.path)).limit(1)
        key = conn.execute(at_loc).scalar()
        if key is not None:
            return key
    return conn.execute(query.order_by(call_outputs.c.key).limit(1)).scalar()


def inputs_of(conn: sa.Connection, keys: Sequence[str]) -> dict[str, dict[str, list[InputRef]]]:
    """key -> argument name -> its inputs in position order (batched IN queries)."""
    found: dict[str, dict[str, list[InputRef]]] = {}
    for chunk in chunks(sorted(set(keys))):
        query = (
            sa.select(call_inputs)
            .where(call_inputs.c.key.in_(chunk))
            .order_by(call_inputs.c.key, call_inputs.c.name, call_inputs.c.position)
        )
        for row in conn.execute(query).mappings():
            ref = InputRef(hash=row["hash"], path=row["path"], store=row["store"])
            found.setdefault(row["key"], {}).setdefault(row["name"], []).append(ref)
    return found


def _inputs_of(conn: sa.Connection, key: str) -> list[tuple[str, InputRef]]:
    query = (
        sa.select(call_inputs)
        .where(call_inputs.c.key == key)
        .order_by(call_inputs.c.name, call_inputs.c.position)
    )
    return [
        (row["name"], InputRef(hash=row["hash"], path=row["path"], store=row["store"]))
        for row in conn.execute(query).mappings()
    ]


# -- stat cache ---------------------------------------------------------------------------


def stat_get(conn: sa.Connection, store: str, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
    """path -> (stamp, hash) for the paths the cache knows."""
    by_loc = {location(store, path): path for path in paths}
    found: dict[str, tuple[str, str]] = {}
    for chunk in chunks(sorted(by_loc)):
        query = sa.select(file_stats.c.loc, file_stats.c.stamp, file_stats.c.hash).where(
            file_stats.c.loc.in_(chunk)
        )
        for loc, stamp, digest in conn.execute(query):
            found[by_loc[loc]] = (stamp, digest)
    return found


def stat_put(conn: sa.Connection, store: str, rows: Iterable[tuple[str, str, int, str]]) -> None:
    """Remember (path, stamp, size, hash) so an unchanged file is never hashed again."""
    now = time.time()
    values = dedupe(
        (
            {
                "loc": location(store, path),
                "store": store,
                "path": path,
                "stamp": stamp,
                "size": size,
                "hash": digest,
                "checked": now,
            }
            for path, stamp, size, digest in rows
        ),
        lambda r: r["loc"],
    )
    if values:
        stmt = upsert(conn.dialect.name, file_stats, ("stamp", "size", "hash", "checked"))
        conn.execute(stmt, values)


# -- code fingerprints ----------------------------------------------------------------------


def code_get(conn: sa.Connection, ref: str) -> tuple[str, list[tuple[str, str]]] | None:
    """(fingerprint, [(source file, stamp)]) kept for a transform, if any."""
    query = sa.select(code_fingerprints.c.fingerprint, code_fingerprints.c.sources).where(
        code_fingerprints.c.ref == ref
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    try:
        return row[0], [(str(path), str(stamp)) for path, stamp in json.loads(row[1])]
    except (ValueError, TypeError):  # a row edited by hand: ask the code again
        return None


def code_put(
    conn: sa.Connection, ref: str, fingerprint: str, sources: Sequence[tuple[str, str]]
) -> None:
    """Keep a transform's fingerprint with the stamps of the source files that decide it."""
    stmt = upsert(conn.dialect.name, code_fingerprints, ("fingerprint", "sources", "checked"))
    conn.execute(
        stmt,
        [
            {
                "ref": ref,
                "fingerprint": fingerprint,
                "sources": json.dumps([list(s) for s in sources]),
                "checked": time.time(),
            }
        ],
    )


__all__ = [
    "LINEAGE_LIMIT",
    "artifact_by_path",
    "code_get",
    "code_put",
    "current_artifacts",
    "finish_run",
    "inputs_of",
    "lineage",
    "recent_runs",
    "referenced_paths",
    "start_run",
    "stat_get",
    "stat_put",
]
