"""A call stuck in C code past its timeout is stopped anyway on process-based executors: the
timer cannot reach it, so its worker process is ended; the call fails with the timeout's
reason, is not run again, and its siblings finish."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_timeouts import assert_first_timed_out_and_siblings_ran

import databacked as db

STEPS = """
import hashlib
import os
import databacked as db


def stuck_in_c(kind: str) -> None:
    # Neither returns to Python for minutes, so the timer's exception never gets in:
    # pbkdf2 releases the GIL, sum over a range holds it.
    if kind == "gil released":
        hashlib.pbkdf2_hmac("sha256", b"x", b"salt", 2_000_000_000)
    else:
        sum(range(10**12))


@db.step(target="t/{x}.json", timeout=1)
def crunch(x: int, kind: str) -> int:
    with open(os.environ["COUNT_FILE"], "a") as f:
        f.write(f"{x}\\n")
    if x == 0:
        stuck_in_c(kind)
    return x


@db.pipeline
def four(kind: str):
    return crunch.map(x=[0, 1, 2, 3], kind=[kind] * 4)
"""


@pytest.fixture
def steps(write_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COUNT_FILE", str(tmp_path / "count.txt"))
    return write_module("stuck_steps", STEPS)


@pytest.mark.parametrize("kind", ["gil released", "gil held"])
@pytest.mark.parametrize("executor", ["processes", "subprocess"])
def test_a_call_stuck_in_c_fails_with_its_timeout_and_siblings_finish(
    steps, store_url: str, catalog_db: str, tmp_path: Path, executor: str, kind: str
) -> None:
    began = time.monotonic()
    result = db.run(
        steps.four, kind, store=store_url, catalog=catalog_db, executor=executor, workers=2
    )
    # Not a timing test: the stuck call would take many minutes, so returning at all within
    # this generous bound proves it was stopped.
    assert time.monotonic() - began < 60
    assert_first_timed_out_and_siblings_ran(result, catalog_db)
    # reported from the journal, not re-run alone to find out who killed the worker
    assert (tmp_path / "count.txt").read_text().split().count("0") == 1
