"""A store moved or copied elsewhere (a renamed folder, an upload to a bucket) keeps its
results: each output found there with the recorded bytes is trusted after one re-hash, then
recorded as that store's, so the next run decides from ``stat`` alone again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

import databacked as db
from databacked.catalog import Catalog

STEPS = """
import os
import databacked as db

def note(text):
    with open(os.environ["STEPS_LOG"], "a") as f:
        f.write(text + "\\n")

@db.step(target="out/{x}.json")
def square(x: int) -> int:
    note(f"square {x}")
    return x * x

@db.step
def total(values: list) -> int:  # no target: kept under .databacked/objects/
    note("total")
    return sum(values)

@db.pipeline
def squares(xs: list):
    return total(square.map(x=xs))
"""


def _ran(log: Path) -> list[str]:
    done = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(done)


@pytest.fixture
def computed(write_module, tmp_path, monkeypatch) -> tuple[ModuleType, str, Path]:
    """The pipeline run once into the store ``tmp_path/lab``: (module, catalog URL, log)."""
    log = tmp_path / "steps.log"
    monkeypatch.setenv("STEPS_LOG", str(log))
    mod = write_module("moved", STEPS)
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    db.run(mod.squares, [1, 2, 3], store=tmp_path / "lab", catalog=catalog, executor="inline")
    _ran(log)
    return mod, catalog, log


def test_a_renamed_store_folder_keeps_its_results(computed, tmp_path, monkeypatch):
    mod, catalog, log = computed
    os.rename(tmp_path / "lab", tmp_path / "archive")
    moved = db.Store(tmp_path / "archive")
    hashed: list[str] = []  # which outputs are read to be trusted
    real_hash = db.Store.hash
    monkeypatch.setattr(db.Store, "hash", lambda s, p: hashed.append(p) or real_hash(s, p))

    again = db.run(mod.squares, [1, 2, 3], store=moved, catalog=catalog, executor="inline")

    assert _ran(log) == []
    assert again.counts()["cached"] == 4
    assert sorted(hashed)[1:] == ["out/1.json", "out/2.json", "out/3.json"]  # once each
    assert sorted(hashed)[0].startswith(".databacked/objects/total/")
    assert again.value.load() == 14
    assert again.value.uri.startswith(moved.url)
    with Catalog.open(catalog) as cat:  # now recorded where they are
        assert {a.path for a in cat.artifacts(moved.url)} >= {"out/1.json", "out/3.json"}
        [row] = cat.lineage(moved.url, "out/2.json")[:1]
        assert row.call is not None and row.call.step == "square"
    hashed.clear()
    third = db.run(mod.squares, [1, 2, 3], store=moved, catalog=catalog, executor="inline")
    assert third.counts()["cached"] == 4
    assert hashed == []  # decided from stat alone again


def test_a_copy_with_a_changed_output_recomputes_only_that_call(computed, tmp_path):
    mod, catalog, log = computed
    shutil.copytree(tmp_path / "lab", tmp_path / "copy")
    (tmp_path / "copy" / "out" / "2.json").write_text("5\n")  # same size, other bytes

    planned = db.plan(mod.squares, [1, 2, 3], store=tmp_path / "copy", catalog=catalog)
    again = db.run(mod.squares, [1, 2, 3], store=tmp_path / "copy", catalog=catalog)
    original = db.run(mod.squares, [1, 2, 3], store=tmp_path / "lab", catalog=catalog)

    reasons = planned.calls.set_index("status").reason
    assert reasons.loc["run"] == "output missing"
    assert _ran(log) == ["square 2"]  # the copy's total is still 14: early cut-off
    assert again.value.load() == 14
    assert (tmp_path / "copy" / "out" / "2.json").read_text() == "4\n"
    assert original.counts()["cached"] == 4  # the original store still has its results


def test_a_local_store_uploaded_to_a_bucket_keeps_its_results(computed, tmp_path, s3_bucket):
    mod, catalog, log = computed
    bucket = db.Store(f"{s3_bucket}/lab")
    for path in (tmp_path / "lab").rglob("*"):
        if path.is_file():
            bucket.put_bytes(path.relative_to(tmp_path / "lab").as_posix(), path.read_bytes())

    on_s3 = db.run(mod.squares, [1, 2, 3], store=bucket, catalog=catalog, executor="threads")
    again = db.run(mod.squares, [1, 2, 3], store=bucket, catalog=catalog, executor="threads")

    assert _ran(log) == []
    assert on_s3.counts()["cached"] == 4 and again.counts()["cached"] == 4
    assert again.value.uri == f"{s3_bucket}/lab/{again.value.path}"
    assert again.value.load() == 14
