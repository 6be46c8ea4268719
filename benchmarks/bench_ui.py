"""Web UI speed on SQLite: a run of 100,000 calls, 10,000 runs, a 2x2048x2048 thumbnail.

The UI is served by uvicorn in this process over a read-only catalog, and timed through real
HTTP (httpx) and a real Chromium (Playwright, Debian's /usr/bin/chromium). Baselines in the
same run: the same server answering a static file (the floor of any request), a page with
an empty result in the same browser, and tifffile reading the image the thumbnail is made of.

    python benchmarks/bench_ui.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import sqlalchemy as sa
import tifffile

import databacked as db
from databacked.catalog import CallRecord, Catalog
from databacked.catalog.schema import runs as runs_table

CALLS = 100_000
FAILED = 500
RUNS = 10_000
ROUNDS = 5
CHROMIUM = os.environ.get("DATABACKED_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _median(fn: Callable[[], float], rounds: int = ROUNDS) -> float:
    fn()  # warm-up: connections, page cache
    return statistics.median(fn() for _ in range(rounds))


def _first_byte(client: httpx.Client, path: str) -> float:
    start = time.perf_counter()
    elapsed = None
    with client.stream("GET", path) as response:
        assert response.status_code == 200, (path, response.status_code)
        for _ in response.iter_raw():
            if elapsed is None:
                elapsed = time.perf_counter() - start
    assert elapsed is not None
    return elapsed


def _fill(catalog: Catalog, store: str) -> str:
    """One run of CALLS calls (FAILED of them failed) and RUNS-1 small runs; the big run's id."""
    big = catalog.start_run({"pipeline": "screen", "host": "bench"})
    now = time.time()
    for start in range(0, CALLS, 10_000):
        batch = [
            CallRecord(
                key=f"{i:064x}",
                step=("load", "segment", "measure", "report")[i % 4],
                run_id=big,
                status="failed" if i < FAILED else "ok",
                store=store,
                params={"site": i},
                outputs={}
                if i < FAILED
                else {
                    "out": {
                        "path": f"measure/{i}.csv",
                        "hash": f"{i:064x}",
                        "size": 100,
                        "format": "csv",
                        "stamp": "m:1:1",
                        "metadata": {},
                    }
                },
                started=now + i / 1000,
                finished=now + i / 1000 + (i % 1000) / 500,
                host="bench",
                error_type="RuntimeError" if i < FAILED else "",
                error_message=f"site {i} broke" if i < FAILED else "",
            )
            for i in range(start, min(start + 10_000, CALLS))
        ]
        catalog.record_calls(batch)
    catalog.finish_run(big, "failed", {"ran": CALLS - FAILED, "failed": FAILED})
    rows = [
        {
            "id": uuid.uuid4().hex,
            "pipeline": f"pipeline{i % 7}",
            "status": ("ok", "failed", "ok", "ok")[i % 4],
            "started": now - 60 * (i + 1),
            "finished": now - 60 * (i + 1) + 30,
            "host": "bench",
            "packages": {},
            "config": {},
            "summary": {"ran": 3, "cached": 1},
        }
        for i in range(RUNS - 1)
    ]
    with catalog.engine.begin() as conn:
        conn.execute(sa.insert(runs_table), rows)
    return big


def _browser_dcl(base: str, paths: list[str]) -> dict[str, float] | None:
    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        for path in paths:

            def once(path: str = path) -> float:
                page.goto(base + path, wait_until="domcontentloaded")
                return (
                    float(
                        page.evaluate(
                            "() => performance.getEntriesByType('navigation')[0]"
                            ".domContentLoadedEventEnd"
                        )
                    )
                    / 1000.0
                )

            out[path] = _median(once)
        browser.close()
    return out


def run() -> list[dict]:
    from databacked.ui import create_app
    from databacked.ui.server import background

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = str(folder / "data")
        url = f"sqlite:///{folder / 'catalog.db'}"
        image = (np.random.default_rng(0).random((2, 2048, 2048)) * 60000).astype(np.uint16)
        tiff = db.save(image, f"{store}/big.ome.tiff", format=db.OmeTiff(dims="CYX"))
        with Catalog.open(url) as catalog:
            t0 = time.perf_counter()
            big = _fill(catalog, store)
            fill = time.perf_counter() - t0
            catalog.record_artifacts(tiff.store.url, [tiff.to_record()])
        results = []
        with background(create_app(url)) as base, httpx.Client(base_url=base) as client:
            floor = _median(lambda: _first_byte(client, "/static/style.css"))
            run_page = _median(lambda: _first_byte(client, f"/runs/{big}"))
            runs_page = _median(lambda: _first_byte(client, "/runs"))
            api_calls = _median(lambda: _first_byte(client, f"/api/runs/{big}/calls"))
            raw_read = _median(lambda: _timed(lambda: tifffile.imread(tiff.uri)))
            colds = []
            for params in ("", "?c=0", "?c=1"):
                path = f"/api/artifacts/{tiff.hash}/thumbnail.png{params}"
                colds.append(_first_byte(client, path))
            cold = statistics.median(colds)
            cached = _median(
                lambda: _first_byte(client, f"/api/artifacts/{tiff.hash}/thumbnail.png")
            )
            dcl = _browser_dcl(base, [f"/runs/{big}", "/artifacts?prefix=nothing/"])
        first_views, first_lists = [], []
        for _ in range(3):  # a fresh server each time: nothing cached yet
            with background(create_app(url)) as base, httpx.Client(base_url=base) as client:
                first_views.append(_first_byte(client, f"/runs/{big}"))
            with background(create_app(url)) as base, httpx.Client(base_url=base) as client:
                first_lists.append(_first_byte(client, "/runs"))
        first_view, first_list = statistics.median(first_views), statistics.median(first_lists)
        note = f"SQLite; {CALLS:,} calls in the run ({FAILED} failed), {RUNS:,} runs"
        note += f" (filled in {fill:.0f} s)"

        def row(case: str, seconds: float, baseline: str, base_s: float, goal: float) -> dict:
            return {
                "section": "Web UI",
                "case": case,
                "seconds": seconds,
                "baseline": baseline,
                "baseline_seconds": base_s,
                "ratio": seconds / base_s if base_s else float("nan"),
                "goal": f"< {goal * 1000:.0f} ms",
                "goal_met": seconds < goal,
                "note": note,
            }

        static = "static file, same server"
        results += [
            row("run page, first byte (100,000 calls)", run_page, static, floor, 0.3),
            row("run page, first view after start", first_view, static, floor, 0.3),
            row("runs page, first byte (10,000 runs)", runs_page, static, floor, 0.3),
            row("runs page, first view after start", first_list, static, floor, 0.3),
            row("API: a run's first 100 calls", api_calls, static, floor, 0.3),
            row(
                "thumbnail 2x2048² uint16 OME-TIFF, cold",
                cold,
                "tifffile.imread, whole file",
                raw_read,
                0.3,
            ),
            row("thumbnail, cached", cached, static, floor, 0.05),
        ]
        if dcl is not None:
            empty = dcl["/artifacts?prefix=nothing/"]
            results.append(
                row(
                    "run page, DOMContentLoaded in Chromium",
                    dcl[f"/runs/{big}"],
                    "empty page, same browser",
                    empty,
                    1.0,
                )
            )
    return results


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    for r in run():
        print(
            f"{r['case']:<48} {r['seconds'] * 1000:8.1f} ms   {r['baseline']}: "
            f"{r['baseline_seconds'] * 1000:.1f} ms   ratio {r['ratio']:.1f}x   goal {r['goal']}"
            f" {'met' if r['goal_met'] else 'MISSED'}"
        )
