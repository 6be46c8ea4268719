"""Leases: which driver is computing which key, so two drivers never compute one key twice.

A lease row (key, owner, host, pid, heartbeat, expiry) is taken before a call is submitted.
Taking is atomic per key because the key is the primary key: each driver deletes *expired*
leases, inserts-or-ignores its own rows, and reads back the keys it now owns. Whoever's
insert lands first owns the key; the other's insert is ignored. SQLite serialises the whole
transaction with ``BEGIN IMMEDIATE``; PostgreSQL and MariaDB run it at READ COMMITTED, where
the unique key (not gap locks) settles the race. A dead driver's leases stop counting once
``expires`` passes. Times are the drivers' wall clocks, so hosts sharing a catalog need
roughly synchronised clocks (NTP), well within a TTL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa

from databacked.catalog.dml import chunks, insert_ignore
from databacked.catalog.records import LeaseRow
from databacked.catalog.schema import leases


def acquire(
    conn: sa.Connection,
    keys: Sequence[str],
    owner: str,
    ttl: float,
    *,
    host: str,
    pid: int | None,
) -> set[str]:
    """Take the free or expired leases among ``keys`` (sorted); return all that ``owner`` holds."""
    now = time.time()
    stmt = insert_ignore(conn.dialect.name, leases)
    held: set[str] = set()
    for chunk in chunks(keys):
        conn.execute(sa.delete(leases).where(leases.c.key.in_(chunk), leases.c.expires < now))
        # Our own live leases are extended rather than re-taken.
        conn.execute(
            sa.update(leases)
            .where(leases.c.key.in_(chunk), leases.c.owner == owner)
            .values(heartbeat=now, expires=now + ttl, host=host, pid=pid)
        )
        rows = [
            {
                "key": key,
                "owner": owner,
                "host": host,
                "pid": pid,
                "acquired": now,
                "heartbeat": now,
                "expires": now + ttl,
            }
            for key in chunk
        ]
        conn.execute(stmt, rows)
        mine = sa.select(leases.c.key).where(leases.c.key.in_(chunk), leases.c.owner == owner)
        held.update(conn.execute(mine).scalars())
    return held


def renew(conn: sa.Connection, owner: str, ttl: float) -> None:
    """Push back the expiry of every lease ``owner`` holds (the driver's heartbeat)."""
    now = time.time()
    conn.execute(
        sa.update(leases).where(leases.c.owner == owner).values(heartbeat=now, expires=now + ttl)
    )


def release(conn: sa.Connection, keys: Sequence[str] | None, owner: str) -> None:
    """Drop ``owner``'s leases on ``keys``, or all of them when ``keys`` is None."""
    if keys is None:
        conn.execute(sa.delete(leases).where(leases.c.owner == owner))
        return
    for chunk in chunks(keys):
        conn.execute(sa.delete(leases).where(leases.c.owner == owner, leases.c.key.in_(chunk)))


def live_leases(
    conn: sa.Connection, keys: Sequence[str], exclude: str | None
) -> dict[str, LeaseRow]:
    """Unexpired leases on ``keys`` held by anyone but ``exclude``."""
    now = time.time()
    found: dict[str, LeaseRow] = {}
    for chunk in chunks(keys):
        query = sa.select(leases).where(leases.c.key.in_(chunk), leases.c.expires >= now)
        if exclude is not None:
            query = query.where(leases.c.owner != exclude)
        for row in conn.execute(query).mappings():
            found[row["key"]] = LeaseRow(
                key=row["key"],
                owner=row["owner"],
                host=row["host"] or "",
                pid=row["pid"],
                acquired=row["acquired"],
                heartbeat=row["heartbeat"],
                expires=row["expires"],
            )
    return found


def all_live(conn: sa.Connection) -> list[LeaseRow]:
    """Every unexpired lease: the calls some driver is computing right now."""
    query = sa.select(leases).where(leases.c.expires >= time.time())
    return [
        LeaseRow(
            key=row["key"],
            owner=row["owner"],
            host=row["host"] or "",
            pid=row["pid"],
            acquired=row["acquired"],
            heartbeat=row["heartbeat"],
            expires=row["expires"],
        )
        for row in conn.execute(query).mappings()
    ]


__all__ = ["acquire", "all_live", "live_leases", "release", "renew"]
