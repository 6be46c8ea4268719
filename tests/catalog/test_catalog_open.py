"""Opening a catalog: migrations, the cheap reopen, concurrent first open, bad URLs."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from databacked.catalog import Catalog
from databacked.catalog.schema import HEAD_REVISION, metadata
from databacked.errors import CatalogError
from databacked.testing import services


def test_open_applies_migrations(catalog: Catalog) -> None:
    inspector = sa.inspect(catalog.engine)
    assert set(metadata.tables) <= set(inspector.get_table_names())
    with catalog.engine.connect() as conn:
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    assert versions == [HEAD_REVISION]


def test_migrations_match_schema(catalog: Catalog) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with catalog.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []


def test_reopen_at_head_runs_one_query_and_no_alembic(catalog_url: str) -> None:
    Catalog.open(catalog_url).close()
    code = (
        "import sys, sqlalchemy as sa\n"
        "from sqlalchemy import event\n"
        "from databacked.catalog import Catalog\n"
        "seen = []\n"
        "event.listen(sa.Engine, 'before_cursor_execute', lambda *a: seen.append(a[2]))\n"
        f"Catalog.open({catalog_url!r}).close()\n"
        "print('alembic' in sys.modules, len([s for s in seen if 'alembic_version' in s]))\n"
        "print([s for s in seen if 'CREATE' in s.upper()])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["False 1", "[]"]


@contextmanager
def _fresh_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'fresh.db'}"
        return
    var = services.POSTGRES_VAR if backend == "postgres" else services.MYSQL_VAR
    with services.scratch_database(services.service_url(var)) as url:
        yield url


def _open_and_count(url: str, barrier, queue) -> None:
    barrier.wait()
    cat = Catalog.open(url)
    queue.put(len(cat.lookup(["0" * 64])))
    cat.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_two_processes_open_a_fresh_catalog_at_once(backend: str, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with _fresh_url(backend, tmp_path) as url:
        barrier, queue = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_open_and_count, args=(url, barrier, queue)) for _ in "ab"]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(120)
        assert [proc.exitcode for proc in procs] == [0, 0]
        assert [queue.get(timeout=5), queue.get(timeout=5)] == [0, 0]
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        engine.dispose()
        assert rows == [(HEAD_REVISION,)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_alembic_revisions_and_fresh_create_give_the_same_schema(
    backend: str, tmp_path: Path
) -> None:
    """A fresh catalog is created at head without Alembic; an old one is migrated by the
    revisions. Both must be the schema of ``metadata``, stamped at head."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from databacked.catalog.connect import _upgrade

    def schema_of(url: str) -> tuple[list, list]:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                diffs = compare_metadata(MigrationContext.configure(conn), metadata)
                rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        finally:
            engine.dispose()
        return diffs, rows

    with _fresh_url(backend, tmp_path / "migrated") as url:
        if backend == "sqlite":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            _upgrade(conn)  # every shipped revision, from an empty database
        engine.dispose()
        assert schema_of(url) == ([], [(HEAD_REVISION,)])
    with _fresh_url(backend, tmp_path / "created") as url:
        code = (
            "import sys\n"
            "from databacked.catalog import Catalog\n"
            f"Catalog.open({url!r}).close()\n"
            "print('alembic' in sys.modules)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["False"]  # created directly, Alembic not even imported
        assert schema_of(url) == ([], [(HEAD_REVISION,)])


def test_sqlite_is_wal_with_busy_timeout(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "a" / "cat.db")  # a plain path is a SQLite file
    with cat.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    cat.close()
    assert (tmp_path / "a" / "cat.db").exists()


def test_newer_schema_is_refused(catalog: Catalog, catalog_url: str) -> None:
    with catalog.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    try:
        with pytest.raises(CatalogError, match=r"9999.*upgrade databacked"):
            Catalog.open(catalog_url)
    finally:
        with catalog.engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{HEAD_REVISION}'")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://someone:s3cretpw@127.0.0.1:1/nowhere",
        "mysql+pymysql://someone:s3cretpw@127.0.0.1:1/nowhere",
    ],
)
def test_unreachable_database_is_a_catalog_error_without_password(url: str) -> None:
    with pytest.raises(CatalogError) as info:
        Catalog.open(url)
    message = str(info.value)
    assert "s3cretpw" not in message
    assert "***" in message
    assert "127.0.0.1:1" in message


def test_bad_urls_are_catalog_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not a database URL"):
        Catalog.open("not a url://x")
    with pytest.raises(CatalogError, match="not a database URL"):
        Catalog.open("postgresql+psycopg://h:notaport/db")
    with pytest.raises(CatalogError, match="driver"):
        Catalog.open("nosuchdialect://user:pw@host/db")
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(CatalogError, match="folder"):
        Catalog.open(f"sqlite:///{blocker / 'sub' / 'cat.db'}")


def test_coerce_keeps_a_catalog_and_opens_urls(tmp_path: Path) -> None:
    cat = Catalog.coerce(f"sqlite:///{tmp_path / 'c.db'}")
    assert Catalog.coerce(cat) is cat
    cat.close()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        default = Catalog.coerce(None)
        default.close()
    finally:
        os.chdir(cwd)
    assert (tmp_path / ".databacked" / "catalog.db").exists()
