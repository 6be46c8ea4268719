"""Per-call logs on every executor: stdout, stderr and ``logging`` records of each call, its
tail in the catalog, the whole of it in the store, and ``databacked logs`` to read them."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import databacked as db
from databacked.catalog import Catalog
from databacked.cli.app import app
from databacked.engine.capture import log_path
from databacked.specs.runner import run_specs
from databacked.store import Store
from databacked.testing import services

STEPS = """
import logging
import sys
import time
import databacked as db

log = logging.getLogger("lab.segment")


@db.step(target="cells/{x}.json")
def segment(x: int) -> int:
    print(f"segmenting field {x}")
    log.warning("field %s: %s cells found", x, 10 * x)
    time.sleep(0.05)  # calls overlap on threads: each keeps its own lines
    print(f"field {x} done", file=sys.stderr)
    if x == 3:
        raise ValueError("field 3 is out of focus")
    return x


@db.pipeline
def fields():
    return segment.map(x=[1, 2, 3, 4])
"""


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def _executor(name: str) -> str:
    if name == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            services.unavailable("install databacked[dask] to run on dask")
    return name


@pytest.mark.parametrize("executor", ["threads", "dask", "processes", "inline"])
def test_each_call_keeps_its_own_log(
    write_module, store_url: str, catalog_db: str, executor: str
) -> None:
    steps = write_module("log_steps", STEPS)
    result = db.run(
        steps.fields, store=store_url, catalog=catalog_db, executor=_executor(executor), workers=2
    )
    assert result.counts()["failed"] == 1

    store = Store(store_url)
    for x, key in zip([1, 2, 3, 4], result.calls["key"], strict=True):
        whole = store.read_bytes(log_path(key)).decode()
        assert f"segmenting field {x}\n" in whole
        assert re.search(rf"WARNING lab\.segment: field {x}: {10 * x} cells found", whole)
        assert f"field {x} done" in whole
        others = {1, 2, 3, 4} - {x}
        assert not any(f"field {o}" in whole for o in others), whole

    out = invoke("logs", "segment", "--store", store_url, "--catalog", catalog_db)
    assert "field 2: 20 cells found" in out and "field 4 done" in out
    failed = invoke("logs", "segment", "--failed", "--store", store_url, "--catalog", catalog_db)
    assert "field 3: 30 cells found" in failed
    assert "ValueError: field 3 is out of focus" in failed
    assert "field 2" not in failed
    by_target = invoke("logs", "cells/4.json", "--store", store_url, "--catalog", catalog_db)
    assert "segmenting field 4" in by_target and "field 1" not in by_target
    where = ("--store", store_url, "--catalog", catalog_db)
    [entry] = json.loads(invoke("logs", "segment", "--failed", "--json", *where))
    assert entry["status"] == "failed" and entry["error_type"] == "ValueError"
    assert "field 3: 30 cells found" in entry["log"]


def test_the_catalog_keeps_a_tail(write_module, store_url: str, catalog_db: str) -> None:
    steps = write_module("log_steps", STEPS)
    result = db.run(steps.fields, store=store_url, catalog=catalog_db, executor="inline")
    with Catalog.open(catalog_db) as catalog:
        rows = {r.key: r for r in catalog.calls_of_run(result.run_id)}
    [failed] = [r for r in rows.values() if r.status == "failed"]
    assert "segmenting field 3" in failed.log and "field 3 done" in failed.log
    assert "field 3 done" in failed.stderr


def test_logs_of_a_failed_cmd_datum(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    for name in ("good", "bad"):
        store.put_bytes(f"texts/{name}.txt", name.encode())
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yml").write_text(
        textwrap.dedent(
            """
            pipeline: check
            input: {repo: texts, glob: "/(*).txt"}
            transform:
              cmd: [sh, -c, "echo checking {1}; test {1} = good || { echo {1}: bad >&2; exit 3; }"]
            """
        )
    )
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Catalog.open(catalog) as cat:
        result = run_specs(tmp_path / "pipelines", store=store, catalog=cat, executor="processes")
    assert result.counts() == {"check": {"failed": 1, "ran": 1}}

    out = invoke("logs", "check", "--failed", "--store", str(store.url), "--catalog", catalog)
    assert "bad: bad\n" in out and "checking bad" in out
    assert "checking good" not in out
