"""The UI's reads of artifacts: current versions by path, and bytes by content hash.

Artifacts are paged by keyset on (path, loc); a hash is found in ``artifacts`` first, then
among call inputs (a spec's raw images are known only as inputs), with the stat cache's stamp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from databacked.catalog.schema import artifacts, call_inputs, calls, file_stats, location
from databacked.ui.queries import PAGE, BadCursor

PATH_CURSOR = r"^([0-9a-f]{2}){0,1000}~[0-9a-f]{64}$"
"""What an artifacts page cursor looks like (hex of the last path, then its loc)."""


def artifact_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "hash": row["hash"],
        "store": row["store"],
        "path": row["path"],
        "size": row["size"],
        "format": row["format"] or "",
        "stamp": row["stamp"] or "",
        "metadata": row["metadata"] or {},
        "key": row["key"],
        "created": row["created"],
    }


def _latest_only(query: Any) -> Any:
    newer = sa.alias(artifacts, "newer")
    return query.where(
        ~sa.exists().where(newer.c.loc == artifacts.c.loc, newer.c.created > artifacts.c.created)
    )


def list_artifacts(
    conn: sa.Connection,
    *,
    prefix: str | None = None,
    after: str | None = None,
    limit: int = PAGE,
) -> tuple[list[dict[str, Any]], str | None]:
    """Current artifacts (latest version per location) by path; cursor: the last path's loc."""
    query = _latest_only(sa.select(artifacts))
    if prefix:
        query = query.where(artifacts.c.path.startswith(prefix, autoescape=True))
    if after:
        path, loc = _decode_path_cursor(after)
        query = query.where(
            sa.or_(
                artifacts.c.path > path, sa.and_(artifacts.c.path == path, artifacts.c.loc > loc)
            )
        )
    query = query.order_by(artifacts.c.path, artifacts.c.loc).limit(limit + 1)
    rows = list(conn.execute(query).mappings())
    last = rows[limit - 1] if len(rows) > limit else None
    cursor = f"{last['path'].encode().hex()}~{last['loc']}" if last is not None else None
    return [artifact_dict(r) for r in rows[:limit]], cursor


def _decode_path_cursor(cursor: str) -> tuple[str, str]:
    encoded, _, loc = cursor.partition("~")
    try:
        if not loc.isalnum():
            raise ValueError(cursor)
        return bytes.fromhex(encoded).decode(errors="replace"), loc
    except ValueError:
        raise BadCursor(f"The page cursor {cursor!r} is not one this UI wrote.") from None


def find_artifact(conn: sa.Connection, digest: str) -> dict[str, Any] | None:
    """The latest catalog row with these bytes, with every other location they are known at.

    Bytes known only as a call's input (a spec's raw images) come from ``call_inputs``.
    """
    rows = list(
        conn.execute(
            sa.select(artifacts).where(artifacts.c.hash == digest).order_by(artifacts.c.created)
        ).mappings()
    )
    if rows:
        record = artifact_dict(rows[-1])
        record["locations"] = [
            {"store": r["store"], "path": r["path"], "stamp": r["stamp"]} for r in rows
        ]
        return record
    query = sa.select(call_inputs.c.store, call_inputs.c.path).where(
        call_inputs.c.hash == digest, call_inputs.c.path.is_not(None)
    )
    found = list(conn.execute(query.distinct().limit(20)).mappings())
    if not found:
        return None
    stamps = _stat_stamps(conn, [(r["store"], r["path"]) for r in found if r["store"]])
    first = found[0]
    return {
        "hash": digest,
        "store": first["store"],
        "path": first["path"],
        "size": None,
        "format": "",
        "stamp": stamps.get((first["store"], first["path"]), ""),
        "metadata": {},
        "key": None,
        "created": None,
        "locations": [
            {"store": r["store"], "path": r["path"], "stamp": stamps.get((r["store"], r["path"]))}
            for r in found
        ],
    }


def _stat_stamps(conn: sa.Connection, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    by_loc = {location(s, p): (s, p) for s, p in pairs}
    if not by_loc:
        return {}
    query = sa.select(file_stats.c.loc, file_stats.c.stamp).where(
        file_stats.c.loc.in_(sorted(by_loc))
    )
    return {by_loc[loc]: stamp for loc, stamp in conn.execute(query)}


def resolve_hash(conn: sa.Connection, prefix: str) -> str | None:
    """A full content hash from a unique prefix (artifacts, then call inputs)."""
    for column in (artifacts.c.hash, call_inputs.c.hash):
        query = sa.select(column).where(column.startswith(prefix, autoescape=True)).distinct()
        found = list(conn.execute(query.limit(2)).scalars())
        if len(found) == 1:
            return found[0]
        if found:
            return None
    return None


def consumers(conn: sa.Connection, digest: str, limit: int = 50) -> list[dict[str, Any]]:
    """Calls that read these bytes (first ``limit``), by key."""
    query = (
        sa.select(call_inputs.c.key, call_inputs.c.name, calls.c.step)
        .join(calls, calls.c.key == call_inputs.c.key, isouter=True)
        .where(call_inputs.c.hash == digest)
        .order_by(call_inputs.c.key)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


__all__ = [
    "PATH_CURSOR",
    "artifact_dict",
    "consumers",
    "find_artifact",
    "list_artifacts",
    "resolve_hash",
]
