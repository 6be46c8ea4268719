"""Workers start early only on a first run (a SQLite catalog that does not exist yet)."""

from __future__ import annotations

from pathlib import Path

import databacked as db
from databacked.catalog import fresh_sqlite


def test_first_run_is_a_missing_sqlite_file(tmp_path: Path) -> None:
    missing, present = tmp_path / "new.db", tmp_path / "old.db"
    present.write_bytes(b"")
    assert fresh_sqlite(f"sqlite:///{missing}")
    assert fresh_sqlite(str(missing))
    assert not fresh_sqlite(f"sqlite:///{present}")
    assert not fresh_sqlite("sqlite:///:memory:")
    assert not fresh_sqlite("postgresql+psycopg://u@127.0.0.1/db")  # a server: unknown
    assert not fresh_sqlite(db.Catalog)  # an object given by the caller


@db.step
def twice(x: int) -> int:
    return 2 * x


@db.pipeline
def doubled(n: int):
    return twice.map(x=list(range(n)))


def test_a_first_run_on_processes_computes_and_a_rerun_is_cached(tmp_path: Path) -> None:
    where = {"store": str(tmp_path / "data"), "catalog": f"sqlite:///{tmp_path / 'c.db'}"}
    first = db.run(doubled, 5, executor="processes", workers=2, **where)
    assert first.ok and [a.load() for a in first.value] == [0, 2, 4, 6, 8]
    again = db.run(doubled, 5, executor="processes", workers=2, **where)
    assert set(again.calls["status"]) == {"cached"}
    assert [a.load() for a in again.value] == [0, 2, 4, 6, 8]
