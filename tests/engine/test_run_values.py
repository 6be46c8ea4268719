"""End to end on in-memory values (persist=False): fan-out, reducers, failures, retries."""

from __future__ import annotations

from pathlib import Path

import pytest

import databacked as db
from databacked.errors import StepFailed, UnhashableValueError

STEPS = """
import os
import databacked as db

LOG = {log!r}

def note(text):
    with open(LOG, "a") as f:
        f.write(text + "\\n")

@db.step(persist=False)
def inc(x: int) -> int:
    note(f"inc {{x}}")
    if x == 3:
        raise ValueError("three is not allowed")
    return x + 1

@db.step(persist=False)
def total(xs: list) -> int:
    note("total")
    return sum(xs)

@db.step(persist=False)
def upto(n: int) -> list:
    return list(range(n))

@db.step(persist=False, retries=2, retry_delay=0.01)
def flaky(x: int) -> int:
    note("flaky")
    with open(LOG) as f:
        attempts = f.read().count("flaky")
    if attempts < 3:
        raise RuntimeError(f"attempt {{attempts}}")
    return x

@db.step(persist=False)
def die(x: int) -> int:
    os._exit(1)

@db.pipeline
def sums(values: list):
    return total(inc.map(x=values))

@db.pipeline
def dynamic(n: int):
    return total(inc.map(x=upto(n)))

@db.pipeline
def partial(values: list):
    incs = inc.map(x=values)
    return {{"each": incs, "sum": total(incs), "alone": total([incs[0]])}}

@db.pipeline
def retried():
    return flaky(5)

@db.pipeline
def killed():
    return {{"dead": die(1), "fine": inc(1)}}
"""


@pytest.fixture
def mod(write_module, tmp_path: Path):
    return write_module("values", STEPS.format(log=str(tmp_path / "log.txt")))


@pytest.fixture
def where(store_url: str, catalog_db: str) -> dict[str, str]:
    return {"store": store_url, "catalog": catalog_db}


def log_lines(tmp_path: Path) -> list[str]:
    return (tmp_path / "log.txt").read_text().splitlines()


def test_map_and_reducer(mod, where) -> None:
    result = db.run(mod.sums, [0, 1, 2], executor="inline", **where)
    assert result.ok
    assert result.value == 6
    assert result.counts() == {"ran": 4, "cached": 0, "failed": 0, "skipped": 0}


def test_dynamic_fan_out_expands_at_run_time(mod, where) -> None:
    result = db.run(mod.dynamic, 3, executor="inline", **where)
    assert result.value == 6
    assert list(result.calls.step).count("inc") == 3


def test_failure_isolated_dependants_skipped(mod, where, tmp_path: Path) -> None:
    result = db.run(mod.partial, [1, 3], executor="inline", **where)
    assert not result.ok
    calls = result.calls
    assert set(calls.columns) >= {"step", "key", "status", "reason", "seconds", "outputs", "error"}
    by_status = calls.groupby("status").step.apply(sorted).to_dict()
    assert by_status["failed"] == ["inc"]
    assert by_status["skipped"] == ["total"]
    assert by_status["ran"] == ["inc", "total"]
    assert result.value["alone"] == 2
    failed = calls[calls.status == "failed"].iloc[0]
    assert "three is not allowed" in failed.error
    with pytest.raises(StepFailed, match="inc") as info:
        result.raise_for_status()
    assert info.value.error_type == "ValueError"


def test_retries_until_success(mod, where, tmp_path: Path) -> None:
    result = db.run(mod.retried, executor="inline", **where)
    assert result.ok, result.summary()
    assert result.value == 5
    assert log_lines(tmp_path).count("flaky") == 3


def test_unhashable_parameter_names_it(mod, where) -> None:
    with pytest.raises(UnhashableValueError, match=r"'x'.*'inc'"):
        db.run(mod.sums, [object()], executor="inline", **where)


def test_killed_worker_process_is_a_failed_call(mod, where) -> None:
    result = db.run(mod.killed, executor="processes", workers=2, **where)
    assert not result.ok
    statuses = dict(zip(result.calls.step, result.calls.status, strict=True))
    assert statuses == {"die": "failed", "inc": "ran"}
    assert result.value["fine"] == 2


def test_outside_a_pipeline_steps_are_plain_functions(mod) -> None:
    assert mod.inc(1) == 2
    assert mod.inc.map(x=[0, 1]) == [1, 2]


BATCH = """
import databacked as db

@db.step(persist=False)
def square(x: int) -> int:
    return x * x

@db.step(persist=False)
def add(xs: list) -> int:
    return sum(xs)

@db.pipeline
def squares(n: int):
    return add(square.map(x=list(range(n))))
"""


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_many_short_calls_run_in_batches(write_module, where, executor: str) -> None:
    mod = write_module("batch", BATCH)
    result = db.run(mod.squares, 100, executor=executor, workers=2, **where)
    assert result.ok, result.summary()
    assert result.value == sum(x * x for x in range(100))
    assert result.counts()["ran"] == 101


def test_in_memory_values_are_never_cached_across_runs(mod, where, tmp_path: Path) -> None:
    db.run(mod.sums, [0, 1], executor="inline", **where)
    again = db.run(mod.sums, [0, 1], executor="inline", **where)
    assert again.counts()["ran"] == 3
    assert log_lines(tmp_path).count("total") == 2


def test_module_loaded_by_path_runs_in_processes(tmp_path: Path, where) -> None:
    import importlib.util
    import sys

    path = tmp_path / "by_path_pipeline.py"
    path.write_text(BATCH.replace("return x * x", "return helper(x)") + HELPER)
    spec = importlib.util.spec_from_file_location("by_path_pipeline_mod", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        result = db.run(module.squares, 4, executor="processes", workers=2, **where)
        assert result.ok, result.summary()
        assert result.value == 1 + 2 + 5 + 10
    finally:
        del sys.modules[spec.name]


HELPER = """
def helper(x):
    return x * x + 1
"""


FANOUT_FAIL = """
import databacked as db

@db.step(persist=False)
def broken(n: int) -> list:
    raise OSError("no list today")

@db.step(persist=False)
def scalar(n: int) -> int:
    return n

@db.step(persist=False)
def inc(x: int) -> int:
    return x + 1

@db.pipeline
def failing(n: int):
    return inc.map(x=broken(n))

@db.pipeline
def not_a_list(n: int):
    return inc.map(x=scalar(n))
"""


def test_dynamic_fan_out_over_a_failed_upstream(write_module, where) -> None:
    mod = write_module("fanfail", FANOUT_FAIL)
    result = db.run(mod.failing, 3, executor="inline", **where)
    assert not result.ok
    assert list(result.calls.status) == ["failed"]
    with pytest.raises(StepFailed, match="no list today"):
        _ = result.value


def test_dynamic_fan_out_over_a_scalar_is_a_clear_error(write_module, where) -> None:
    mod = write_module("fanfail", FANOUT_FAIL)
    with pytest.raises(db.PipelineError, match=r"'scalar'.*int, not a list"):
        db.run(mod.not_a_list, 3, executor="inline", **where)
