"""Failures are loud in a notebook: a logged line, the repr, ``value`` and ``raise_on_failure``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType

import pytest

import databacked as db
from databacked.errors import StepFailed

STEPS = """
import databacked as db

@db.step(target="sq/{x}.json")
def square(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x

@db.step(target="total.json")
def total(xs: list) -> int:
    return sum(xs)

@db.pipeline
def squares(n: int):
    return total(xs=square.map(x=list(range(n))))

@db.pipeline
def parts(n: int):
    return {"first": square(x=1), "third": square(x=3)}
"""


@pytest.fixture
def mod(write_module: Callable[[str, str], ModuleType]) -> ModuleType:
    return write_module("loud", STEPS)


def test_a_failed_run_logs_one_line_and_shows_the_failure(
    mod: ModuleType, store_url: str, catalog_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="databacked"):
        result = db.run(mod.squares, 4, store=store_url, catalog=catalog_db, executor="inline")
    assert not result.ok
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("databacked")]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "1 failed" in lines[0] and "1 skipped" in lines[0]
    assert "three is not allowed" in lines[0]
    assert "three is not allowed" in repr(result) and "failed" in repr(result)
    with pytest.raises(StepFailed, match=r"'total'.*skipped because step 'square' failed") as info:
        _ = result.value
    assert info.value.step == "square" and info.value.error_type == "ValueError"


def test_value_of_a_failed_call_raises_and_raise_on_failure_raises_at_the_end(
    mod: ModuleType, store_url: str, catalog_db: str
) -> None:
    where = {"store": store_url, "catalog": catalog_db, "executor": "inline"}
    result = db.run(mod.parts, 0, **where)
    assert result.value["first"].load() == 1  # what did not fail is there
    with pytest.raises(StepFailed, match=r"'square' has no value: its call failed"):
        _ = result.value["third"]
    with pytest.raises(StepFailed, match="three is not allowed"):
        db.run(mod.squares, 4, raise_on_failure=True, **where)
    ok = db.run(mod.squares, 3, raise_on_failure=True, **where)
    assert ok.ok and ok.value.load() == 0 + 1 + 4


def test_a_good_run_logs_nothing(
    mod: ModuleType, store_url: str, catalog_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="databacked"):
        db.run(mod.squares, 2, store=store_url, catalog=catalog_db, executor="inline")
    assert not [r for r in caplog.records if r.name.startswith("databacked")]
