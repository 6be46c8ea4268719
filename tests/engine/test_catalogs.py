"""The same pipeline on SQLite, PostgreSQL and MariaDB catalogs, and on an S3 store."""

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


def test_pipeline_on_an_s3_store(write_module, s3_bucket: str, tmp_path: Path) -> None:
    mod = write_module("s3pipe", STEPS)
    where = {
        "store": f"{s3_bucket}/project",
        "catalog": f"sqlite:///{tmp_path / 'c.db'}",
        "executor": "threads",
        "workers": 2,
    }
    first = db.run(mod.squares, [1, 2, 3], **where)
    assert first.ok, first.summary()
    assert first.value.uri == f"{s3_bucket}/project/total.json"
    assert first.value.load() == 14
    second = db.run(mod.squares, [1, 2, 3], **where)
    assert second.counts()["cached"] == 4
    db.Store(f"{s3_bucket}/project").delete("out/2.json")
    third = db.run(mod.squares, [1, 2, 3], **where)
    reasons = third.calls[third.calls.status == "ran"].reason.tolist()
    assert reasons == ["output missing"]
