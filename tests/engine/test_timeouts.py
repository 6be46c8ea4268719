"""Timeouts: a call past ``timeout=`` (a datum past ``datum_timeout``) is stopped and failed
with its reason, retried when it has retries, and the rest of the run goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import databacked as db
from databacked.catalog import Catalog
from databacked.errors import ConfigError
from databacked.specs.runner import run_specs
from databacked.store import Store

STEPS = """
import os
import time
import databacked as db


@db.step(target="t/{x}.json", timeout=1)
def sleepy(x: int) -> int:
    with open(os.environ["COUNT_FILE"], "a") as f:
        f.write(f"{x}\\n")
    time.sleep(30 if x == 0 else 0.01)
    return x


@db.step(target="r/{x}.json", timeout=1, retries=1)
def sleepy_retried(x: int) -> int:
    return sleepy.fn(x)


@db.pipeline
def four():
    return sleepy.map(x=[0, 1, 2, 3])


@db.pipeline
def four_retried():
    return sleepy_retried.map(x=[0, 1, 2, 3])
"""


@pytest.fixture
def steps(write_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COUNT_FILE", str(tmp_path / "count.txt"))
    return write_module("timeout_steps", STEPS)


@pytest.mark.parametrize("executor", ["processes", "inline"])
def test_a_call_past_its_timeout_fails_and_its_siblings_finish(
    steps, store_url: str, catalog_db: str, executor: str
) -> None:
    result = db.run(steps.four, store=store_url, catalog=catalog_db, executor=executor, workers=2)
    assert_first_timed_out_and_siblings_ran(result, catalog_db)


def assert_first_timed_out_and_siblings_ran(result: Any, catalog_db: str) -> None:
    """Of the four calls of ``four`` (x = 0 stuck), the first failed with its timeout, in
    the run's result and in the catalog, and the three others ran."""
    calls = result.calls  # in the order of the map: x = 0, 1, 2, 3
    assert list(calls["status"]) == ["failed", "ran", "ran", "ran"]
    assert calls["error"][0] == "CallTimeout: timeout after 1 s"
    with Catalog.open(catalog_db) as catalog:
        [attempt] = [c for c in catalog.calls_of_run(result.run_id) if c.status == "failed"]
    assert attempt.error_message == "timeout after 1 s"


def test_a_timed_out_call_is_retried(steps, store_url: str, catalog_db: str, tmp_path) -> None:
    result = db.run(steps.four_retried, store=store_url, catalog=catalog_db, executor="processes")
    assert result.counts() == {"ran": 3, "cached": 0, "failed": 1, "skipped": 0}
    assert (tmp_path / "count.txt").read_text().split().count("0") == 2


def test_threads_cannot_enforce_a_timeout_and_say_so_before_running(
    steps, store_url: str, catalog_db: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"cannot enforce.*processes"):
        db.run(steps.four, store=store_url, catalog=catalog_db, executor="threads")
    assert not (tmp_path / "count.txt").exists()


def test_datum_timeout_stops_a_command(tmp_path: Path, slow_copy_spec: Store) -> None:
    store = slow_copy_spec
    with Catalog.open(tmp_path / "catalog.db") as catalog:
        result = run_specs(
            tmp_path / "pipelines", store=store, catalog=catalog, executor="processes", workers=2
        )
    rows = {r.datum: r for r in result.of("copy")}
    assert sorted(r.status for r in rows.values()) == ["failed", "ran", "ran"]
    [failed] = result.of("copy", "failed")
    assert failed.error == "timeout after 1 s"
    assert store.read_bytes("copy/fast1.txt") == b"fast1"
    assert not store.exists("copy/slow.txt")


def test_a_bad_duration_is_a_spec_error(tmp_path: Path) -> None:
    from databacked.errors import SpecError
    from databacked.specs.loading import load_text

    with pytest.raises(SpecError, match="datum_timeout '5 minutes' is not a duration"):
        load_text(
            "pipeline: p\ndatum_timeout: 5 minutes\ninput: {repo: r, glob: /*}\n"
            "transform: {cmd: [echo]}\n"
        )
