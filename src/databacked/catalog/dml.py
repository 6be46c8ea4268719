"""Portable bulk statements: insert-or-ignore and upsert on SQLite, PostgreSQL and MariaDB.

Each builder returns one statement meant for ``connection.execute(stmt, rows)``, which the
drivers run as a single executemany (pysqlite, psycopg pipelines, PyMySQL multi-row VALUES),
so 10,000 rows are a handful of round trips, not 10,000.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

CHUNK = 500
"""Keys per ``IN (...)`` list: below every dialect's bound-parameter limit, and fast to plan."""

_RETRIES = 8
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _pk_names(table: sa.Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


def insert_ignore(dialect: str, table: sa.Table) -> sa.Insert:
    """INSERT that silently skips rows whose primary key already exists."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.mysql import insert as mysql_insert

    # Not INSERT IGNORE: that would also turn truncation and type errors into warnings.
    stmt = mysql_insert(table)
    first = _pk_names(table)[0]
    return stmt.on_duplicate_key_update({first: stmt.inserted[first]})


def upsert(dialect: str, table: sa.Table, update: Iterable[str]) -> sa.Insert:
    """INSERT that, for an existing primary key, overwrites the ``update`` columns."""
    names = list(update)
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        stmt = dialect_insert(table)
        return stmt.on_conflict_do_update(
            index_elements=_pk_names(table),
            set_={name: stmt.excluded[name] for name in names},
        )
    from sqlalchemy.dialects.mysql import insert as mysql_insert

    stmt = mysql_insert(table)
    return stmt.on_duplicate_key_update({name: stmt.inserted[name] for name in names})


def dedupe(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> list[dict]:
    """Rows with unique ``key`` (the last one wins), sorted by it.

    Sorted so that concurrent writers lock rows in the same order (no deadlocks), unique
    because PostgreSQL refuses to upsert the same row twice in one statement.
    """
    unique = {key(row): row for row in rows}
    return [unique[k] for k in sorted(unique)]


def is_transient(exc: sa.exc.DBAPIError) -> bool:
    """A deadlock or serialization failure: the transaction may simply be run again."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in ("40P01", "40001"):  # psycopg
        return True
    args = getattr(orig, "args", ())
    return bool(args) and args[0] in (1213, 1205)  # MySQL deadlock, lock wait timeout


def retrying(fn: Callable[[], T]) -> T:
    """Run a whole transaction ``fn`` again when the database chose it as a deadlock victim."""
    for attempt in range(_RETRIES):
        try:
            return fn()
        except sa.exc.DBAPIError as exc:
            if attempt == _RETRIES - 1 or not is_transient(exc):
                raise
            time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["CHUNK", "chunks", "dedupe", "insert_ignore", "is_transient", "retrying", "upsert"]
