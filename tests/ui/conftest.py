"""Fixtures for the web UI: real catalogs made by real runs, a real server, a real Chromium.

``demo_site``: ``databacked demo`` (one field per well), then a pipeline with a planted
failure, a multi-Z OME-Zarr and a file with markup in its name, all in one SQLite catalog.
``plate_site``: the plate-screen example (seed 002) run by the spec runner.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import databacked as db
from databacked.testing import services

CHROMIUM = os.environ.get("DATABACKED_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ODD_NAME = "odd/<img src=x onerror=document.title='pwned'>.json"


@db.step
def square(x: int) -> int:
    """Squares; fails for 3 (the planted failure)."""
    print(f"squaring {x}")
    if x == 3:
        raise ValueError("x must not be 3 (the test's planted failure)")
    return x * x


@db.step
def total(values: list[int]) -> int:
    return sum(values)


@db.pipeline
def flaky(n: int) -> Any:
    return total(values=square.map(x=list(range(n))))


@dataclass
class Site:
    folder: Path
    store: str
    catalog: str
    run_ids: dict[str, str]
    hashes: dict[str, str]


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    from typer.testing import CliRunner

    from databacked.catalog import Catalog
    from databacked.cli.app import app

    folder = tmp_path_factory.mktemp("demo")
    demo = CliRunner().invoke(
        app, ["demo", "--folder", str(folder), "--fields", "1", "--executor", "inline"]
    )
    assert demo.exit_code == 0, demo.output
    store, catalog = str(folder / "data"), f"sqlite:///{folder / '.databacked' / 'catalog.db'}"
    with Catalog.open(catalog) as cat:
        demo_run = cat.runs(limit=1)[0].id
    failing = db.run(flaky, 6, store=store, catalog=catalog, executor="inline")
    assert not failing.ok
    zarr = db.save(
        np.arange(2 * 5 * 96 * 96, dtype=np.uint16).reshape(2, 5, 96, 96) % 1000,
        f"{store}/volumes/stack.ome.zarr",
        format=db.OmeZarr(dims="CZYX", channel_names=["dna", "actin"], multiscale=2),
    )
    odd = db.save({"a": 1}, f"{store}/{ODD_NAME}")
    with Catalog.open(catalog) as cat:
        for artifact in (zarr, odd):
            cat.record_artifacts(artifact.store.url, [artifact.to_record()])
    hashes = {
        "tiff": _hash_of(catalog, "normalized/plate1_A01_s1_c00.ome.tiff"),
        "zarr": zarr.hash,
        "odd": odd.hash,
        "summary": _hash_of(catalog, "summary.csv"),
    }
    return Site(folder, store, catalog, {"demo": demo_run, "flaky": failing.run_id}, hashes)


def _hash_of(catalog: str, path: str) -> str:
    from databacked.catalog import Catalog

    with Catalog.open(catalog) as cat:
        rows = [a for a in cat.artifacts() if a.path == path]
    assert rows, path
    return rows[0].hash


@pytest.fixture(scope="session")
def plate_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    from databacked.examples import plate_screen
    from databacked.specs.runner import run_specs
    from databacked.store import Store

    folder = tmp_path_factory.mktemp("screen")
    root = plate_screen.write_project(folder)
    store = Store(root / "data")
    for well in plate_screen.WELLS:
        for site in (1, 2):
            plate_screen.write_site(store, "plate1", well, site)
    catalog = f"sqlite:///{folder / 'catalog.db'}"
    result = run_specs(root / "pipelines", store=store, catalog=catalog)
    assert result.ok
    return Site(folder, store.url, catalog, {"screen": result.run_id}, {})


@pytest.fixture(scope="session")
def demo_url(demo_site: Site) -> Iterator[str]:
    from databacked.ui import create_app
    from databacked.ui.server import background

    with background(create_app(demo_site.catalog)) as base:
        yield base


@pytest.fixture(scope="session")
def plate_url(plate_site: Site) -> Iterator[str]:
    from databacked.ui import create_app
    from databacked.ui.server import background

    with background(create_app(plate_site.catalog)) as base:
        yield base


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        services.unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A browser tab that records console errors and failed requests."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def open(self, url: str) -> Any:
        response = self.page.goto(url)
        self.page.wait_for_load_state("networkidle")
        return response


@pytest.fixture
def tab(chromium: Any) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = Page(context.new_page())
    yield page
    context.close()
