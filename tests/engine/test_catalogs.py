"""The same pipeline on SQLite, PostgreSQL and MariaDB catalogs."""

from __future__ import annotations

import uuid
from pathlib import Path

import databacked as db

STEPS = """
import databacked as db

@db.step(target="out/{x}.json")
def square(x: int) -> int:
    return x * x

@db.step(target="total.json")
def total(values: list) -> int:
    return sum(values)

@db.pipeline
def squares(xs: list):
    return total(square.map(x=xs))
"""


def test_pipeline_on_each_catalog(write_module, catalog_url: str, tmp_path: Path) -> None:
    mod = write_module("catalogs", STEPS)
    # server databases are shared by the session: a fresh store keeps keys apart by inputs
    xs = [uuid.uuid4().int % 10_000, 3]
    where = {"store": str(tmp_path / "data"), "catalog": catalog_url, "executor": "inline"}
    first = db.run(mod.squares, xs, **where)
    assert first.ok, first.summary()
    assert first.value.load() == sum(x * x for x in xs)
    second = db.run(mod.squares, xs, **where)
    assert second.counts() == {"ran": 0, "cached": 3, "failed": 0, "skipped": 0}
