"""The attic keeps recorded outputs by content, and gives a call its outputs back."""

from __future__ import annotations

from pathlib import Path

from databacked.catalog import CallRecord, Catalog
from databacked.specs import runner
from databacked.specs.attic import attic_path, copy_file, restorable, stash
from databacked.store import Store


def _recorded(store: Store, catalog: Catalog, path: str, data: bytes) -> object:
    """Write ``path`` and record a completed call that made it; its catalog row."""
    written = store.put_bytes(path, data)
    output = {"path": path, "hash": written.hash, "size": written.size, "format": "bytes",
              "stamp": written.stamp, "metadata": {}}  # fmt: skip
    catalog.record_calls([CallRecord(key="k1", step="edges", store=store.url,
                                     outputs={path: output})])  # fmt: skip
    return catalog.lookup(["k1"])["k1"]


def test_a_stashed_output_comes_back_only_while_its_bytes_wait_in_the_attic(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "data")
    catalog = Catalog.open(tmp_path / "catalog.db")
    try:
        row = _recorded(store, catalog, "edges/a.png", b"edges of a")
        art = next(iter(row.outputs.values()))
        infos = {i.path: i for i in store.list("edges")}
        assert restorable(store, "edges", row, infos) == []  # present as recorded: nothing to do

        tracked = (art.hash, art.stamp)
        assert stash(store, "edges", "edges/a.png", tracked, infos["edges/a.png"], move=True)
        assert not store.exists("edges/a.png")
        kept = attic_path("edges", art.hash)
        assert store.read_bytes(kept) == b"edges of a"

        moves = restorable(store, "edges", row, {})
        assert moves == [(kept, "edges/a.png")]
        store.delete(kept)
        assert restorable(store, "edges", row, {}) == []  # gone from the attic: must re-run
    finally:
        catalog.close()


def test_stash_leaves_a_file_that_is_not_the_recorded_one(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    catalog = Catalog.open(tmp_path / "catalog.db")
    try:
        row = _recorded(store, catalog, "edges/a.png", b"edges of a")
        art = next(iter(row.outputs.values()))
        store.put_bytes("edges/a.png", b"edited by hand")
        now = store.info("edges/a.png")
        assert not stash(store, "edges", "edges/a.png", (art.hash, art.stamp), now, move=True)
        assert not stash(store, "edges", "edges/a.png", None, now, move=True)
        assert store.read_bytes("edges/a.png") == b"edited by hand"
    finally:
        catalog.close()


def test_copy_keeps_the_original_and_links_locally(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.put_bytes("edges/a.png", b"edges of a")
    assert copy_file(store, "edges/a.png", "kept/a.png")
    assert store.read_bytes("edges/a.png") == store.read_bytes("kept/a.png") == b"edges of a"
    source, copy = store.local_path("edges/a.png"), store.local_path("kept/a.png")
    assert source is not None and copy is not None
    assert source.stat().st_ino == copy.stat().st_ino
    assert not copy_file(store, "edges/missing.png", "kept/missing.png")


def test_the_runner_still_offers_the_planning_names() -> None:
    from databacked.specs import plan

    assert runner.plan_specs is plan.plan_specs
    assert runner.SpecPlan is plan.SpecPlan
    assert issubclass(runner.SpecRunResult, runner.SpecPlan)
    assert runner.attic_path("p", "h") == ".databacked/objects/removed/p/h"
