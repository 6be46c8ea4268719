"""Target templates and callables, named formats, and what plan says before a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import databacked as db

STEPS = """
import os
import numpy as np
import databacked as db

@db.step(target="by-key/{{step}}-{{key}}.json")
def keyed(x: int) -> int:
    return x + {offset}

@db.step(target=lambda x, name: f"named/{{name}}/{{x:03d}}.json")
def called(x: int, name: str) -> int:
    return x + {offset}

@db.step(targets={{"arr": "fmt/{{x}}.bin", "meta": "fmt/{{x}}.json"}},
         format={{"arr": db.Npy()}})
def formatted(x: int) -> dict:
    return {{"arr": np.full(3, x), "meta": {{"x": x}}}}

@db.step(target="fragile/{{x}}.json")
def fragile(x: int) -> int:
    if os.environ.get("FRAGILE_FAIL") == "1":
        raise RuntimeError("asked to fail")
    return x

@db.step(target="sum.json")
def add(values: list) -> int:
    return sum(values)

@db.pipeline
def many(n: int):
    return add(keyed.map(x=list(range(n))))

@db.pipeline
def many_called(n: int):
    return called.map(x=list(range(n)), name="m")

@db.pipeline
def shapes():
    return [called(3, "a"), formatted(2)]

@db.pipeline
def chain(x: int):
    return add([fragile(x)])
"""


@pytest.fixture
def where(store_url: str, catalog_db: str) -> dict[str, str]:
    return {"store": store_url, "catalog": catalog_db}


def test_key_and_callable_targets_and_named_formats(write_module, where) -> None:
    mod = write_module("targets", STEPS.format(offset=0))
    result = db.run(mod.shapes, executor="inline", **where)
    assert result.ok, result.summary()
    store = Path(where["store"])
    assert json.loads((store / "named" / "a" / "003.json").read_text()) == 3
    outputs = result.calls.set_index("step").outputs["formatted"]
    assert outputs == {"arr": "fmt/2.bin", "meta": "fmt/2.json"}
    assert list(db.load(str(store / "fmt" / "2.bin"), format=db.Npy())) == [2, 2, 2]
    keyed = db.run(mod.many, 2, executor="inline", **where)
    paths = sorted(p for o in keyed.calls.outputs for p in o.values())
    key = keyed.calls.set_index("step").key
    assert f"by-key/keyed-{key['keyed'].iloc[0]}.json" in paths


def test_plan_before_and_after(write_module, where) -> None:
    mod = write_module("targets", STEPS.format(offset=0))
    before = db.plan(mod.many, 3, **where).calls
    assert list(before.status) == ["run", "run", "run", "waiting"]
    assert set(before.reason[:3]) == {"new"}
    db.run(mod.many, 3, executor="inline", **where)
    after = db.plan(mod.many, 3, **where).calls
    assert set(after.status) == {"cached"}


def test_code_change_reason_for_many_calls(write_module, where) -> None:
    db.run(write_module("targets", STEPS.format(offset=0)).many, 60, executor="inline", **where)
    # a {key} target moves with the key: a new call, not "code changed", for keyed outputs
    calls = db.plan(write_module("targets", STEPS.format(offset=1)).many, 60, **where).calls
    assert set(calls[calls.step == "keyed"].reason) == {"new"}
    assert calls[calls.step == "add"].status.item() == "waiting"
    db.run(
        write_module("targets", STEPS.format(offset=0)).many_called, 60, **where, executor="inline"
    )
    edited = write_module("targets", STEPS.format(offset=1)).many_called
    assert set(db.plan(edited, 60, **where).calls.reason) == {"code changed"}


def test_previously_failed_reason(write_module, where, monkeypatch) -> None:
    mod = write_module("targets", STEPS.format(offset=0))
    monkeypatch.setenv("FRAGILE_FAIL", "1")
    failed = db.run(mod.chain, 5, executor="inline", **where)
    assert list(failed.calls.status) == ["failed", "skipped"]
    monkeypatch.setenv("FRAGILE_FAIL", "0")
    planned = db.plan(mod.chain, 5, **where).calls
    assert planned.reason[0] == "previously failed"
    assert db.run(mod.chain, 5, executor="inline", **where).ok


UNCACHED = """
import databacked as db

@db.step(target="always.json", cache=False)
def always(thing) -> int:
    return 1

@db.pipeline
def once(thing):
    return always(thing)
"""


def test_cache_false_always_runs_and_accepts_unhashable(write_module, where) -> None:
    mod = write_module("uncached", UNCACHED)
    for _ in range(2):
        result = db.run(mod.once, object(), executor="inline", **where)
        assert result.counts()["ran"] == 1, result.summary()
    assert json.loads(Path(where["store"], "always.json").read_text()) == 1


NOISY = """
import sys
import databacked as db

@db.step(target="noisy.json")
def noisy(x: int) -> int:
    print("hello from the step")
    print("x" * 100_000, file=sys.stderr)
    if x < 0:
        raise ValueError("negative")
    return x

@db.pipeline
def run_noisy(x: int):
    return noisy(x)
"""


def test_calls_record_bounded_output_and_errors(write_module, where) -> None:
    mod = write_module("noisy", NOISY)
    catalog = db.Catalog.open(where["catalog"])
    try:
        ok = db.run(mod.run_noisy, 1, executor="inline", store=where["store"], catalog=catalog)
        (row,) = catalog.calls_of_run(ok.run_id)
        assert "hello from the step" in row.stdout
        assert 0 < len(row.stderr) <= 64 * 1024
        assert row.host and row.pid
        failed = db.run(mod.run_noisy, -1, executor="inline", store=where["store"], catalog=catalog)
        (row,) = catalog.calls_of_run(failed.run_id)
        assert row.status == "failed"
        assert row.error_type == "ValueError" and row.error_message == "negative"
        assert "raise ValueError" in row.traceback
        assert not Path(where["store"], "noisy.json").read_text().startswith("-")
    finally:
        catalog.close()
