"""Completed calls as the cache: batched recording, lookup, at-least-once, failures, forget."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import event

from databacked.catalog import CallRecord, Catalog, InputRef

if TYPE_CHECKING:
    from conftest import Names


def _count_statements(catalog: Catalog) -> list[str]:
    seen: list[str] = []
    event.listen(catalog.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


def test_record_and_lookup_10000_calls_in_few_statements(catalog: Catalog, names: Names) -> None:
    records = [names.call(i) for i in range(10_000)]
    statements = _count_statements(catalog)
    catalog.record_calls(records)
    recorded = len(statements)
    found = catalog.lookup(r.key for r in records)
    looked_up = len(statements) - recorded
    assert recorded < 20, statements[:30]
    assert looked_up <= 2 * (10_000 // 500) + 5
    assert len(found) == 10_000
    row = found[names.key(1234)]
    assert (row.step, row.status, row.params, row.seconds) == (names.step, "ok", {"i": 1234}, 1.5)
    out = row.outputs["out"]
    assert (out.store, out.path, out.hash, out.size, out.stamp) == (
        names.store,
        "out/1234.npy",
        names.digest(1234),
        1334,
        "m:1:1",
    )


def test_a_brief_lookup_has_the_same_hits_and_outputs(catalog: Catalog, names: Names) -> None:
    """What deciding a cache hit reads: every completed key, with its outputs, and neither
    the logs nor the parameters of each call."""
    records = [names.call(i, stdout="x" * 1000) for i in range(1200)]
    catalog.record_calls(records)
    keys = [r.key for r in records] + [names.key("nothing")]
    full, brief = catalog.lookup(keys), catalog.lookup(keys, brief=True)
    assert set(brief) == set(full) == {r.key for r in records}
    for key, row in brief.items():
        assert (row.key, row.step, row.status) == (key, full[key].step, "ok")
        assert row.outputs == full[key].outputs
        assert row.stdout == "" and row.params == {}


def test_lookup_of_unknown_keys_is_empty(catalog: Catalog, names: Names) -> None:
    assert catalog.lookup([names.key("nothing")]) == {}
    assert catalog.lookup([]) == {}


def test_recording_the_same_key_twice_is_harmless(catalog: Catalog, names: Names) -> None:
    first = names.call(1, stdout="first")
    catalog.record_calls([first])
    # A second execution (at least once) of the same key, whose write left a new stamp.
    moved = names.out("out/1.npy", names.digest(1), 101, stamp="m:2:2")
    again = dataclasses.replace(first, stdout="second", outputs={"out": moved})
    catalog.record_calls([again, again])
    row = catalog.lookup([first.key])[first.key]
    assert row.stdout == "first"
    assert row.outputs["out"].stamp == "m:2:2"
    assert len(catalog.artifacts(store=names.store)) == 1


def test_outputs_as_dicts_and_several_outputs(catalog: Catalog, names: Names) -> None:
    record = CallRecord(
        key=names.key("multi"),
        step=names.step,
        store=names.store,
        outputs={
            "mask": {
                "path": "m.ome.tiff",
                "hash": names.digest("m"),
                "size": 5,
                "format": "ome-tiff",
                "stamp": "e:abc",
                "metadata": {"dims": "ZYX", "shape": [2, 3, 4]},
            },
            "table": names.out("t.csv", names.digest("t"), 7, format="csv"),
        },
    )
    catalog.record_calls([record])
    outputs = catalog.lookup([record.key])[record.key].outputs
    assert set(outputs) == {"mask", "table"}
    assert outputs["mask"].metadata == {"dims": "ZYX", "shape": [2, 3, 4]}
    assert outputs["mask"].format == "ome-tiff"


def test_failures_are_history_not_cache(catalog: Catalog, names: Names) -> None:
    run_id = catalog.start_run({"pipeline": names.step, "host": "h", "git": {"commit": "abc"}})
    failed = CallRecord(
        key=names.key("f"),
        step=names.step,
        run_id=run_id,
        status="failed",
        started=5.0,
        error_type="ValueError",
        error_message="bad pixel",
        traceback="Traceback...",
    )
    catalog.record_failures([failed])
    catalog.record_calls(
        [names.call(1, run_id=run_id), dataclasses.replace(failed, status="skipped")]
    )
    assert catalog.lookup([failed.key]) == {}
    calls = catalog.calls_of_run(run_id)
    assert sorted(c.status for c in calls) == ["failed", "ok", "skipped"]
    failure = next(c for c in calls if c.status == "failed")
    assert (failure.error_type, failure.error_message) == ("ValueError", "bad pixel")
    ok = next(c for c in calls if c.status == "ok")
    assert ok.outputs["out"].path == "out/1.npy"
    catalog.finish_run(run_id, "failed", {"ran": 1, "failed": 1})
    run = next(r for r in catalog.runs(limit=1000) if r.id == run_id)
    assert (run.pipeline, run.status, run.git_commit, run.summary) == (
        names.step,
        "failed",
        "abc",
        {"ran": 1, "failed": 1},
    )
    assert run.finished is not None


def test_forget_by_step_key_prefix_and_age(catalog: Catalog, names: Names) -> None:
    other = f"{names.step}_other"
    catalog.record_calls([names.call(i) for i in range(5)] + [names.call(9, step=other)])
    run_id = catalog.start_run({"pipeline": "p"})
    assert catalog.forget(step=names.step, older_than=timedelta(hours=1)) == 0
    assert catalog.forget(key=names.key(0)[:12]) == 1
    assert catalog.forget(step=names.step, older_than=timedelta(0)) == 4
    remaining = catalog.lookup([names.key(i) for i in (0, 1, 2, 3, 4, 9)])
    assert list(remaining) == [names.key(9)]
    assert run_id in {r.id for r in catalog.runs(limit=1000)}
    assert catalog.referenced_paths(names.store) == {"out/9.npy"}


def test_forgotten_call_can_be_recorded_again(catalog: Catalog, names: Names) -> None:
    catalog.record_calls([names.call(1)])
    assert catalog.forget(key=names.key(1)) == 1
    catalog.record_calls([names.call(1)])
    assert names.key(1) in catalog.lookup([names.key(1)])


def test_stat_cache_round_trip_and_update(catalog: Catalog, names: Names) -> None:
    rows = [(f"raw/{i}.tif", f"m:{i}:1", i, names.digest(i)) for i in range(1200)]
    catalog.stat_cache_put(names.store, rows)
    got = catalog.stat_cache_get(names.store, [f"raw/{i}.tif" for i in range(1300)])
    assert len(got) == 1200
    assert got["raw/7.tif"] == ("m:7:1", names.digest(7))
    catalog.stat_cache_put(names.store, [("raw/7.tif", "m:8:1", 8, names.digest("new"))])
    assert catalog.stat_cache_get(names.store, ["raw/7.tif"]) == {
        "raw/7.tif": ("m:8:1", names.digest("new"))
    }
    assert catalog.stat_cache_get(names.store + "/elsewhere", ["raw/7.tif"]) == {}


def test_artifacts_listing_latest_version_per_path(catalog: Catalog, names: Names) -> None:
    catalog.record_calls([names.call(i) for i in range(3)])
    rewritten = names.call(0)
    newer = names.out("out/0.npy", names.digest("v2"), 1)
    catalog.record_calls(
        [dataclasses.replace(rewritten, key=names.key("v2"), outputs={"o": newer})]
    )
    listed = catalog.artifacts(store=names.store)
    assert [(a.path, a.hash) for a in listed] == [
        ("out/0.npy", names.digest("v2")),
        ("out/1.npy", names.digest(1)),
        ("out/2.npy", names.digest(2)),
    ]
    assert [a.path for a in catalog.artifacts(store=names.store, prefix="out/1")] == ["out/1.npy"]
    assert catalog.artifact_by_path(names.store, "out/0.npy").hash == names.digest("v2")
    assert catalog.artifact_by_path(names.store, "out/none.npy") is None


def test_lineage_walks_inputs_recursively(catalog: Catalog, names: Names) -> None:
    raw = InputRef(hash=names.digest("raw"), path="raw/a.tif", store=names.store)
    first = names.call(1, inputs={"fov": [raw], "cell_index": []})
    produced = InputRef(hash=names.digest(1), path="out/1.npy")
    second = names.call(2, inputs={"cell": [produced], "extra": names.digest("x")})
    catalog.record_calls([first, second])
    rows = catalog.lineage(names.store, "out/2.npy")
    assert [(r.depth, r.path, r.call.key if r.call else None) for r in rows] == [
        (0, "out/2.npy", names.key(2)),
        (1, "out/1.npy", names.key(1)),
        (1, None, None),
        (2, "raw/a.tif", None),
    ]
    assert rows[1].parent == names.key(2) and rows[1].argument == "cell"
    assert rows[1].inputs == (raw,)
    assert catalog.lineage(names.store, "nope") == []


def test_statement_count_does_not_grow_with_rows_on_sqlite(tmp_path: Path, names: Names) -> None:
    cat = Catalog.open(f"sqlite:///{tmp_path / 'c.db'}")
    statements = _count_statements(cat)
    cat.record_calls([names.call(i) for i in range(10)])
    small = len(statements)
    cat.record_calls([names.call(i) for i in range(10, 2010)])
    assert len(statements) - small == small
    with cat.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM calls")).scalar() == 2010
    cat.close()


def test_last_failures_and_saved_artifacts(catalog: Catalog, names: Names) -> None:
    for message in ("first", "second"):
        failed = CallRecord(
            key=names.key("f"), step=names.step, status="failed", error_message=message
        )
        catalog.record_failures([failed])
    catalog.record_failures([dataclasses.replace(failed, key=names.key("s"), status="skipped")])
    failures = catalog.last_failures([names.key("f"), names.key("s"), names.key("x")])
    assert list(failures) == [names.key("f")]
    assert failures[names.key("f")].error_message == "second"

    saved = names.out("saved/a.png", names.digest("a"), 3, format="png")
    catalog.record_artifacts(
        names.store,
        [
            saved,
            {
                "path": "saved/b.json",
                "hash": "0" * 64,
                "size": 2,
                "format": "json",
                "stamp": "m:1:1",
            },
        ],
    )
    assert catalog.artifact_by_path(names.store, "saved/a.png").key is None
    assert catalog.referenced_paths(names.store) == {"saved/a.png", "saved/b.json"}


def test_two_drivers_committing_the_same_calls_at_once(catalog_url: str, names: Names) -> None:
    Catalog.open(catalog_url).close()
    records = [names.call(i) for i in range(2000)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def commit(batch: list[CallRecord]) -> None:
        cat = Catalog.open(catalog_url)
        try:
            barrier.wait()
            for start in range(0, len(batch), 500):
                cat.record_calls(batch[start : start + 500])
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            cat.close()

    # The second driver commits the same calls in reverse batch order.
    threads = [
        threading.Thread(target=commit, args=(records,)),
        threading.Thread(target=commit, args=(records[::-1],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    with Catalog.open(catalog_url) as cat:
        found = cat.lookup(r.key for r in records)
    assert len(found) == 2000
    assert all(
        row.outputs["out"].hash == names.digest(i)
        for i, row in enumerate(found[r.key] for r in records)
    )


def test_one_catalog_shared_by_threads(tmp_path: Path, names: Names) -> None:
    with Catalog.open(tmp_path / "c.db") as cat, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: cat.record_calls([names.call(i)]), range(40)))
        found = list(pool.map(lambda i: cat.lookup([names.key(i)]), range(40)))
    assert all(len(hit) == 1 for hit in found)
