"""Opening a catalog database: engine options per dialect, and migrations under a lock.

Opening is on the path of every CLI command, so the common case (schema already at head)
costs one query of ``alembic_version`` and never imports Alembic. Only a fresh or older
catalog takes the migration lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
``pg_advisory_lock``, MariaDB/MySQL ``GET_LOCK``), so two processes opening a fresh catalog
at once are safe. An older catalog runs the shipped Alembic revisions; an empty database
gets the head schema created directly and stamped, as Alembic's own cookbook does
("create_all, then stamp"): importing and running Alembic would cost a first run ~0.3 s.
A test holds the revisions and ``schema.metadata`` to the same tables.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from databacked.catalog.schema import HEAD_REVISION, KNOWN_REVISIONS, metadata
from databacked.errors import CatalogError
from databacked.secrets import redact_text

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another process's write lock before giving up."""

_LOCK_NAME = "databacked_catalog_migrate"
_PG_LOCK_ID = 0x64626B5F6D6967  # arbitrary constant for pg_advisory_lock: "dbk_mig"
_MYSQL_LOCK_WAIT_S = 120

IMMEDIATE = "databacked_sqlite_immediate"
"""Execution option: begin this connection's SQLite transactions with ``BEGIN IMMEDIATE``."""


def redact(url: str) -> str:
    """The URL as safe to print: the password replaced by ``***`` (``databacked.secrets``)."""
    return redact_text(url)


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url`` with databacked's per-dialect settings; CatalogError if invalid."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise CatalogError(
            f"The catalog URL {redact(url)!r} is not a database URL; "
            "use e.g. sqlite:///.databacked/catalog.db or postgresql+psycopg://host/db."
        ) from exc
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {}
    if backend == "sqlite":
        _make_sqlite_folder(parsed.database)
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    elif backend in ("mysql", "mariadb"):
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        options["pool_pre_ping"] = True
    else:
        options["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(parsed, **options)
    except Exception as exc:  # NoSuchModuleError, ArgumentError, missing driver...
        raise CatalogError(
            f"Cannot use the catalog URL {redact(url)}: {exc}; check the dialect and that its "
            "driver is installed (psycopg for PostgreSQL, PyMySQL for MariaDB/MySQL)."
        ) from exc
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def _make_sqlite_folder(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CatalogError(
            f"Cannot create the folder of the SQLite catalog {database}: {exc}; "
            "choose a writable location for the catalog."
        ) from exc


def _configure_sqlite(engine: sa.Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN until the first write and cannot emit
    # BEGIN IMMEDIATE, so we switch it off and begin transactions ourselves: IMMEDIATE for
    # writers (a deferred read-then-write transaction fails at once under contention instead
    # of waiting for the busy timeout), plain BEGIN for readers.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _enable_wal(cursor: Any) -> None:
    # Switching a fresh file to WAL needs an exclusive lock, and SQLite reports "database is
    # locked" at once (without the busy handler) when another process switches it too.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def ensure_schema(engine: sa.Engine, url: str) -> None:
    """Bring the catalog to the head revision, or raise CatalogError if it is newer."""
    current = _current_revisions(engine, url)
    if current == {HEAD_REVISION}:
        return
    _refuse_newer(current, url)
    try:
        with _migration_lock(engine) as conn:
            # Another process may have migrated while we waited for the lock.
            current = _read_revisions(conn)
            if current == {HEAD_REVISION}:
                return
            _refuse_newer(current, url)
            if current is None and not sa.inspect(conn).get_table_names():
                _create_at_head(conn)
            else:
                _upgrade(conn)
    except sa.exc.SQLAlchemyError as exc:
        raise CatalogError(
            f"Could not migrate the catalog {redact(url)} to schema revision {HEAD_REVISION}: "
            f"{exc}; check that the database user may create tables and take locks."
        ) from exc


def _current_revisions(engine: sa.Engine, url: str) -> set[str] | None:
    try:
        conn = engine.connect()
    except sa.exc.DBAPIError as exc:
        hint = (
            "check that the file's folder is writable and no other program holds it locked"
            if engine.dialect.name == "sqlite"
            else "check that the server is running and the URL, user and password are right"
        )
        raise CatalogError(
            f"Cannot reach the catalog database {redact(url)}: {exc.orig}; {hint}."
        ) from exc
    with conn:
        return _read_revisions(conn)


def _read_revisions(conn: sa.Connection) -> set[str] | None:
    """Revisions in ``alembic_version``; None when the table does not exist yet."""
    try:
        with conn.begin_nested() if conn.in_transaction() else conn.begin():
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except sa.exc.DBAPIError:
        return None
    return {row[0] for row in rows}


def _refuse_newer(revisions: set[str] | None, url: str) -> None:
    unknown = sorted((revisions or set()) - set(KNOWN_REVISIONS))
    if unknown:
        raise CatalogError(
            f"The catalog {redact(url)} has schema revision {', '.join(unknown)}, newer than "
            f"this databacked knows (head {HEAD_REVISION}); upgrade databacked "
            "(pip install -U databacked) to use it."
        )


@contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection holding the cross-process migration lock, inside a transaction."""
    backend = engine.dialect.name
    with engine.connect() as conn:
        if backend == "sqlite":
            conn.execution_options(**{IMMEDIATE: True})  # in place
            with conn.begin():
                yield conn
            return
        if backend == "postgresql":
            lock = sa.text("SELECT pg_advisory_lock(:id)").bindparams(id=_PG_LOCK_ID)
            unlock = sa.text("SELECT pg_advisory_unlock(:id)").bindparams(id=_PG_LOCK_ID)
        else:
            lock = sa.text("SELECT GET_LOCK(:n, :t)").bindparams(n=_LOCK_NAME, t=_MYSQL_LOCK_WAIT_S)
            unlock = sa.text("SELECT RELEASE_LOCK(:n)").bindparams(n=_LOCK_NAME)
        got = conn.execute(lock).scalar()
        conn.commit()
        if got == 0:
            raise CatalogError(
                f"Timed out after {_MYSQL_LOCK_WAIT_S} s waiting for another process to finish "
                "migrating the catalog; try again, or look for a stuck databacked process."
            )
        try:
            with conn.begin():
                yield conn
        finally:
            conn.execute(unlock)
            conn.commit()


def _create_at_head(conn: sa.Connection) -> None:
    """An empty database: the head schema, stamped with its revision as Alembic would."""
    metadata.create_all(conn)
    version = sa.Table(
        "alembic_version",
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )
    version.create(conn)
    conn.execute(version.insert().values(version_num=HEAD_REVISION))


def _upgrade(conn: sa.Connection) -> None:
    # Imported here: Alembic is only needed when the schema actually changes.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, "head")
    except Exception as exc:
        raise CatalogError(
            f"Could not migrate the catalog to schema revision {HEAD_REVISION}: {exc}; "
            "check that the database user may create tables."
        ) from exc


__all__ = ["IMMEDIATE", "SQLITE_BUSY_TIMEOUT_S", "create_engine", "ensure_schema", "redact"]
