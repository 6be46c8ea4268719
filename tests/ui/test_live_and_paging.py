"""A run that is still running refreshes its counts in place; big runs page by keyset."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from databacked.catalog import CallRecord, Catalog

Page = Any


def _calls(run_id: str, start: int, n: int, status: str = "ok") -> list[CallRecord]:
    now = time.time()
    return [
        CallRecord(
            key=f"{i:064x}",
            step=("load", "measure")[i % 2],
            run_id=run_id,
            status=status,  # type: ignore[arg-type]
            started=now,
            finished=now + (i % 97) / 10,
            error_type="RuntimeError" if status == "failed" else "",
            error_message=f"call {i} broke" if status == "failed" else "",
        )
        for i in range(start, start + n)
    ]


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}") as catalog:
        yield catalog


@pytest.fixture
def served(writer: Catalog) -> Iterator[str]:
    from databacked.ui import create_app
    from databacked.ui.server import background

    with background(create_app(writer.url)) as base:
        yield base


def test_counts_refresh_while_the_run_is_running(tab: Page, writer: Catalog, served: str):
    run_id = writer.start_run({"pipeline": "live"})
    writer.record_calls(_calls(run_id, 0, 10))
    tab.open(f"{served}/runs/{run_id}")
    expect(tab.page.locator("[data-count=ran] .n")).to_have_text("10")
    writer.record_calls(_calls(run_id, 10, 5) + _calls(run_id, 15, 1, "failed"))
    expect(tab.page.locator("[data-count=ran] .n")).to_have_text("15", timeout=10_000)
    expect(tab.page.locator("[data-count=failed] .n")).to_have_text("1")
    writer.finish_run(run_id, "failed", {"ran": 15, "failed": 1, "cached": 4})
    expect(tab.page.locator("[data-count=cached] .n")).to_have_text("4", timeout=10_000)
    assert tab.page.locator("#live[hx-trigger]").count() == 0  # polling stopped
    assert tab.errors == []


def test_keyset_pages_of_a_big_run(tab: Page, writer: Catalog, served: str):
    run_id = writer.start_run({"pipeline": "big"})
    writer.record_calls(_calls(run_id, 0, 120) + _calls(run_id, 120, 3, "failed"))
    writer.finish_run(run_id, "failed", {"ran": 120, "failed": 3})
    tab.open(f"{served}/runs/{run_id}")
    seen: list[str] = []
    seconds: list[float] = []
    while True:
        rows = tab.page.locator("#calls tbody tr").evaluate_all(
            "rows => rows.map(r => [r.dataset.key, r.dataset.status, r.cells[4].textContent])"
        )
        assert 0 < len(rows) <= 50
        seen += [key for key, _, _ in rows]
        seconds += [float(text) for _, status, text in rows if status == "ran"]
        if tab.page.locator("#next").count() == 0:
            break
        tab.page.click("#next")
        tab.page.wait_for_load_state("networkidle")
        assert re.search(r"after=", tab.page.url)
    assert len(seen) == len(set(seen)) == 123
    assert set(seen[:3]) == {f"{i:064x}" for i in (120, 121, 122)}  # failed first
    assert seconds == sorted(seconds, reverse=True)  # then slowest first
    assert tab.errors == []
