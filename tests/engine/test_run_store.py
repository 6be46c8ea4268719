"""End to end on a real store and SQLite catalog: caching, reasons, targets, outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import databacked as db
from databacked.errors import ArtifactNotFound, TargetConflictError, TargetEscapeError

STEPS = """
from __future__ import annotations  # db.File stays a string until the hints are resolved

import json
import databacked as db

LOG = {log!r}

def note(text):
    with open(LOG, "a") as f:
        f.write(text + "\\n")

def scale(x):
    return x * {factor}

@db.step(target="scaled/{{x}}.json")
def scaled(x: int) -> dict:
    note(f"scaled {{x}}")
    return {{"x": x, "v": scale(x)}}

@db.step(target="parity/{{x}}.json")
def parity(x: int) -> int:
    note(f"parity {{x}}")
    return x % 2

@db.step
def describe(p: int) -> dict:
    note("describe")
    return {{"odd": bool(p)}}

@db.step(target="total.json")
def total(items: list) -> int:
    note("total")
    return sum(item["v"] for item in items)

@db.step(targets={{"a": "split/{{x}}-a.json", "b": "split/{{x}}-b.json"}})
def split(x: int) -> dict:
    note("split")
    return {{"a": x, "b": -x}}

@db.step(target="read/{{name}}.json")
def read(name: str, path: db.File) -> str:
    note("read")
    with open(path) as f:
        return f.read()

@db.pipeline
def main(xs: list):
    each = scaled.map(x=xs)
    return {{"each": each, "total": total(each)}}

@db.pipeline
def cutoff(x: int):
    return describe(parity(x))

@db.pipeline
def multi(x: int):
    out = split(x)
    return {{"a": out["a"], "odd": describe(out["b"])}}

@db.pipeline
def reading(path: str):
    return read("input", path)

@db.step(target="listing/{{n}}.json")
def listing(n: int) -> list:
    return list(range(1, n + 1))

@db.pipeline
def dynamic(n: int):
    return total(scaled.map(x=listing(n)))

@db.step(target="same.json")
def same(x: int) -> int:
    note("same")
    return x

@db.pipeline
def clash(xs: list):
    return [scaled(1), same.map(x=xs)]

@db.step(target="../{{x}}.json")
def escape(x: int) -> int:
    return x

@db.pipeline
def escaping():
    return escape(1)
"""


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log.txt"


@pytest.fixture
def steps(write_module, log: Path):
    return lambda factor=2: write_module("stored", STEPS.format(log=str(log), factor=factor))


@pytest.fixture
def where(store_url: str, catalog_db: str) -> dict[str, str]:
    return {"store": store_url, "catalog": catalog_db, "executor": "inline"}


def stored(where: dict[str, str], path: str) -> object:
    return json.loads(Path(where["store"], path).read_text())


def output_of(result, step: str) -> str:
    return result.calls.set_index("step").outputs[step]["value"]


def ran(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    log.write_text("")
    return lines


def statuses(result) -> dict[str, list[str]]:
    calls = result.calls
    return {s: sorted(calls[calls.status == s].step) for s in set(calls.status)}


def test_second_run_is_all_cached_and_reads_nothing(steps, where, log: Path) -> None:
    mod = steps()
    first = db.run(mod.main, [1, 2, 3], **where)
    assert first.ok, first.summary()
    assert stored(where, "total.json") == 12
    assert [stored(where, f"scaled/{i}.json") for i in (1, 2, 3)] == [
        {"x": i, "v": 2 * i} for i in (1, 2, 3)
    ]
    assert ran(log) == ["scaled 1", "scaled 2", "scaled 3", "total"]
    second = db.run(mod.main, [1, 2, 3], **where)
    assert second.counts() == {"ran": 0, "cached": 4, "failed": 0, "skipped": 0}
    assert ran(log) == []


def test_helper_edit_reruns_users_comment_does_not(steps, where, log: Path) -> None:
    db.run(steps(2).main, [1, 2], **where)
    ran(log)
    edited = db.run(steps(3).main, [1, 2], **where)
    assert sorted(ran(log)) == ["scaled 1", "scaled 2", "total"]
    reasons = dict(zip(edited.calls.step, edited.calls.reason, strict=False))
    assert reasons["scaled"] == "code changed"
    assert reasons["total"].startswith("upstream changed: items[0] = ")


def test_comment_reruns_nothing(write_module, where, log: Path) -> None:
    source = STEPS.format(log=str(log), factor=2)
    db.run(write_module("c", source).main, [1], **where)
    ran(log)
    again = source.replace("def scale(x):", "def scale(x):\n    # a comment\n")
    result = db.run(write_module("c", again).main, [1], **where)
    assert result.counts()["cached"] == 2
    assert ran(log) == []


def test_parameter_change_reruns_only_affected(steps, where, log: Path) -> None:
    mod = steps()
    db.run(mod.main, [1, 2], **where)
    ran(log)
    result = db.run(mod.main, [1, 5], **where)
    assert sorted(ran(log)) == ["scaled 5", "total"]
    assert statuses(result) == {"cached": ["scaled"], "ran": ["scaled", "total"]}


def test_early_cutoff_identical_bytes_rerun_nothing_downstream(steps, where, log: Path) -> None:
    mod = steps()
    db.run(mod.cutoff, 1, **where)
    ran(log)
    result = db.run(mod.cutoff, 3, **where)
    assert ran(log) == ["parity 3"]
    assert statuses(result) == {"ran": ["parity"], "cached": ["describe"]}


def test_dynamic_fan_out_over_a_stored_list(steps, where, log: Path) -> None:
    mod = steps()
    result = db.run(mod.dynamic, 3, **where)
    assert stored(where, "total.json") == 12
    assert sorted(result.calls.step) == ["listing", "scaled", "scaled", "scaled", "total"]
    ran(log)
    again = db.run(mod.dynamic, 3, **where)
    assert again.counts()["cached"] == 5
    assert ran(log) == []


def test_named_outputs(steps, where) -> None:
    result = db.run(steps().multi, 4, **where)
    assert result.ok, result.summary()
    assert stored(where, "split/4-a.json") == 4
    assert stored(where, "split/4-b.json") == -4
    described = output_of(result, "describe")
    assert described.startswith(".databacked/objects/describe/")
    assert stored(where, described) == {"odd": True}


def test_output_deleted_reruns_with_reason(steps, where, log: Path) -> None:
    mod = steps()
    db.run(mod.main, [1], **where)
    Path(where["store"], "scaled", "1.json").unlink()
    planned = db.plan(mod.main, [1], store=where["store"], catalog=where["catalog"])
    rows = planned.calls.set_index("step")
    assert rows.loc["scaled", "status"] == "run"
    assert rows.loc["scaled", "reason"] == "output missing"
    ran(log)
    result = db.run(mod.main, [1], **where)
    assert ran(log) == ["scaled 1"]
    assert statuses(result) == {"ran": ["scaled"], "cached": ["total"]}


def test_output_modified_is_detected(steps, where) -> None:
    mod = steps()
    db.run(mod.main, [1], **where)
    Path(where["store"], "scaled", "1.json").write_text('{"x": 1, "v": 99}')
    result = db.run(mod.main, [1], **where)
    reasons = dict(zip(result.calls.step, result.calls.reason, strict=True))
    assert reasons["scaled"] == "output modified"


def test_input_file_hashed_by_content(steps, where, tmp_path: Path, log: Path) -> None:
    mod = steps()
    source = tmp_path / "input.txt"
    source.write_text("one")
    db.run(mod.reading, str(source), **where)
    assert stored(where, "read/input.json") == "one"
    ran(log)
    assert db.run(mod.reading, str(source), **where).counts()["cached"] == 1
    source.write_text("two")
    result = db.run(mod.reading, str(source), **where)
    assert ran(log) == ["read"]
    assert result.calls.reason[0] == f"input changed: path = {source}"


def test_missing_input_file_is_one_sentence(steps, where, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound, match=r"nope\.txt.*'path'.*'read'"):
        db.run(steps().reading, str(tmp_path / "nope.txt"), **where)


def test_target_conflict_refused_before_anything_runs(steps, where, log: Path) -> None:
    with pytest.raises(TargetConflictError, match=r"same\.json"):
        db.run(steps().clash, [1, 2], **where)
    assert ran(log) == []
    assert not Path(where["store"], "scaled").exists()


def test_target_escape_refused(steps, where) -> None:
    with pytest.raises(TargetEscapeError, match="leaves the store"):
        db.run(steps().escaping, **where)
    assert not Path(where["store"]).parent.joinpath("1.json").exists()


def test_processes_executor_and_memory_store(steps, where, catalog_db: str) -> None:
    mod = steps()
    result = db.run(mod.main, [1, 2], **{**where, "executor": "processes"}, workers=2)
    assert result.ok, result.summary()
    assert stored(where, "total.json") == 6
    in_memory = db.run(
        mod.main, [1, 2], store="memory://engine-test", catalog=catalog_db, executor="inline"
    )
    assert in_memory.ok, in_memory.summary()
    assert json.loads(db.Store("memory://engine-test").read_bytes("total.json")) == 6


def test_verify_rehashes_outputs_whose_stat_looks_unchanged(steps, where) -> None:
    mod = steps()
    db.run(mod.main, [1], **where)
    output = Path(where["store"], "scaled", "1.json")
    before = output.stat()
    output.write_text(output.read_text().replace("2", "7"))  # same size, same inode
    os.utime(output, ns=(before.st_atime_ns, before.st_mtime_ns))
    trusting = db.plan(mod.main, [1], store=where["store"], catalog=where["catalog"])
    assert set(trusting.calls.status) == {"cached"}
    checked = db.run(mod.main, [1], verify=True, **where)
    reasons = dict(zip(checked.calls.step, checked.calls.reason, strict=True))
    assert reasons["scaled"] == "output modified"


def test_progress_events(steps, where) -> None:
    events: list = []
    db.run(steps().main, [1, 2], progress=events.append, **where)
    assert [e.status for e in events if e.step == "total"] == ["running", "ran"]
    events.clear()
    db.run(steps().main, [1, 2], progress=events.append, **where)
    assert {e.status for e in events} == {"cached"}


def test_touched_output_is_rehashed_once_then_trusted_again(steps, where, log: Path) -> None:
    mod = steps()
    db.run(mod.main, [1], **where)
    output = Path(where["store"], "scaled", "1.json")
    os.utime(output, ns=(1_000_000_000, 1_000_000_000))  # stamp moves, bytes do not
    catalog = db.Catalog.open(where["catalog"])
    try:
        assert db.run(mod.main, [1], **where).counts()["cached"] == 2
        row = catalog.artifact_by_path(db.Store(where["store"]).url, "scaled/1.json")
        assert row is not None
        assert row.stamp == db.Store(where["store"]).info("scaled/1.json").stamp
    finally:
        catalog.close()
