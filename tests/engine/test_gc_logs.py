"""gc collects whole call logs (``.databacked/logs/<key>.log``) of calls the catalog no
longer holds, counts them in a dry run like the rest, and keeps the logs ``databacked logs``
still needs: completed calls, recorded failed attempts, calls holding a live lease."""

from __future__ import annotations

import os
import time
from pathlib import Path

from typer.testing import CliRunner

import databacked as db
from databacked.cli.app import app
from databacked.engine import housekeeping
from databacked.engine.capture import log_path

STEPS = """
import databacked as db


@db.step(target="a/{x}.json")
def loud(x: int) -> int:
    print(f"loud {x}")
    if x == 3:
        raise ValueError("three is not allowed")
    return x


@db.step(target="b/{x}.json")
def other(x: int) -> int:
    print(f"other {x}")
    return x


@db.pipeline
def both():
    return loud.map(x=[1, 2, 3]), other.map(x=[1])
"""


def _old(path: Path) -> None:
    then = time.time() - 7200
    os.utime(path, (then, then))


def test_gc_removes_logs_of_forgotten_and_unrecorded_calls(write_module, tmp_path: Path) -> None:
    steps = write_module("gc_log_steps", STEPS)
    store_url, catalog_url = str(tmp_path / "data"), f"sqlite:///{tmp_path / 'catalog.db'}"
    result = db.run(steps.both, store=store_url, catalog=catalog_url, executor="inline")
    loud1, loud2, loud3, other1 = result.calls["key"]  # in the order of the pipeline
    store = db.Store(store_url)
    for key in (loud1, loud2, loud3, other1):
        assert store.exists(log_path(key))
    stray, running = "c" * 64, "d" * 64
    store.put_bytes(log_path(stray), b"a call killed before it was recorded\n")
    store.put_bytes(log_path(running), b"a call another driver is running\n")
    for key in (loud1, loud2, loud3, other1, stray, running):
        # older than the live lease below: not written by a call that is running now
        _old(tmp_path / "data" / log_path(key))

    with db.Catalog.open(catalog_url) as catalog:
        assert catalog.forget(step="other") == 1
        assert catalog.acquire([running], "other-driver", 600.0) == {running}
        gone = {log_path(other1), log_path(stray)}
        dry = housekeeping.gc(store, catalog, dry_run=True)
        assert set(dry.removed) == gone and dry.logs == 2
        assert store.exists(log_path(other1))

        cli = CliRunner().invoke(
            app, ["gc", "--dry-run", "--store", store_url, "--catalog", catalog_url]
        )
        assert cli.exit_code == 0, cli.output
        assert "Would remove 2 call logs" in " ".join(cli.output.split())

        report = housekeeping.gc(store, catalog)
        assert set(report.removed) == gone
        assert report.details[log_path(stray)] == housekeeping.UNKNOWN_LOG
        for key in (other1, stray):
            assert not store.exists(log_path(key))
        # completed calls, a failed attempt, a call holding a live lease: kept
        for key in (loud1, loud2, loud3, running):
            assert store.exists(log_path(key))
        assert housekeeping.gc(store, catalog, dry_run=True).removed == ()

    out = CliRunner().invoke(app, ["logs", "loud", "--store", store_url, "--catalog", catalog_url])
    assert out.exit_code == 0 and "loud 2" in out.output
