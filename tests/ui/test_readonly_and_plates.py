"""The catalog opened read-only on every database; 384-well plates from datum captures."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import databacked as db
from databacked.catalog import CallRecord, Catalog
from databacked.errors import CatalogError

Page = Any


def test_server_catalogs_are_opened_read_only(catalog_url: str):
    from databacked.ui import queries
    from databacked.ui.source import open_catalog

    with Catalog.open(catalog_url) as writer:
        run_id = writer.start_run({"pipeline": "ro-check"})
    reader = open_catalog(catalog_url)
    try:
        with reader.engine.connect() as conn:
            assert queries.get_run(conn, run_id)["pipeline"] == "ro-check"
        with pytest.raises(CatalogError):
            reader.start_run({"pipeline": "sneaky"})
    finally:
        reader.close()
    with Catalog.open(catalog_url) as writer:
        assert "sneaky" not in {r.pipeline for r in writer.runs(limit=1000)}


def _datum(i: int, well: str, site: int) -> CallRecord:
    return CallRecord(
        key=f"{i:064x}",
        step="measure",
        run_id="r384",
        params={
            "datum": f"{i:016x}",
            "slot": f"big/{well}_s{site}",
            "group": None,
            "attributes": {"plate": "big", "well": well, "site": str(site)},
        },
        started=time.time(),
        finished=time.time() + 0.5,
    )


@pytest.fixture
def plate384(tmp_path: Path) -> Iterator[str]:
    from databacked.ui import create_app
    from databacked.ui.server import background

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Catalog.open(url) as writer:
        wells = [f"{row}{col:02d}" for row in "ABCDEFGHIJKLMNOP" for col in range(1, 25)]
        writer.record_calls([_datum(i, w, 1) for i, w in enumerate(wells[::5])])
    with background(create_app(url)) as base:
        yield base


def test_a_384_well_plate(tab: Page, plate384: str):
    tab.open(f"{plate384}/plates/big")
    assert tab.page.locator("#plate-grid").get_attribute("data-wells") == "384"
    assert tab.page.locator("#plate-grid [data-well]").count() == 384
    done = tab.page.locator("#plate-grid [data-status=ok]").count()
    assert done == len(range(0, 384, 5))
    assert tab.page.locator("[data-well=P24]").count() == 1
    assert tab.errors == []


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"well": "A01"}, (0, 0)),
        ({"well": "p24"}, (15, 23)),
        ({"well": "B7"}, (1, 6)),
        ({"row": "C", "column": "12"}, (2, 11)),
        ({"row": "3", "col": 4}, (2, 3)),
        ({"well": "Z99"}, None),
        ({"site": "1"}, None),
    ],
)
def test_well_names(attributes: dict[str, Any], expected: tuple[int, int] | None):
    from databacked.ui.plates import parse_well

    assert parse_well(attributes) == expected


def test_a_file_read_by_400_calls_says_narrow_it(tmp_path: Path):
    import httpx

    from databacked.catalog import InputRef
    from databacked.ui import create_app
    from databacked.ui.server import background

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    source = "f" * 64
    with Catalog.open(url) as writer:
        writer.record_calls(
            [
                CallRecord(
                    key=f"{i:064x}",
                    step="crop",
                    store="/store",
                    inputs={"image": [InputRef(source, "raw/plate.tif", "/store")]},
                    outputs={
                        "out": {
                            "path": f"crops/{i}.npy",
                            "hash": f"{i + 1:064x}",
                            "size": 1,
                            "format": "npy",
                            "stamp": "",
                            "metadata": {},
                        }
                    },
                )
                for i in range(400)
            ]
        )
    with background(create_app(url)) as base:
        page = httpx.get(f"{base}/lineage/{source}").text
        small = httpx.get(f"{base}/lineage/{1:064x}").text
    assert 'id="too-large"' in page
    assert 'id="too-large"' not in small


def test_an_older_catalog_is_not_migrated_by_the_ui(tmp_path: Path):
    import sqlalchemy as sa

    from databacked.ui.source import open_catalog

    path = tmp_path / "old.db"
    with Catalog.open(f"sqlite:///{path}") as writer:
        writer.start_run({"pipeline": "old"})
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # as if it predated the schema's revisions
        conn.exec_driver_sql("DELETE FROM alembic_version")
    engine.dispose()
    before = path.read_bytes()
    with pytest.raises(CatalogError, match="databacked status"):
        open_catalog(f"sqlite:///{path}")
    assert path.read_bytes() == before


def test_run_page_counts_the_calls_found_cached_per_step(tmp_path: Path) -> None:
    """A rerun computes nothing: its run page still says, per step, how many were cached."""
    from fastapi.testclient import TestClient

    from databacked.ui import create_app

    store, catalog = str(tmp_path / "data"), f"sqlite:///{tmp_path / 'catalog.db'}"
    db.run(doubled, 4, store=store, catalog=catalog, executor="inline")
    again = db.run(doubled, 4, store=store, catalog=catalog, executor="inline")
    assert again.counts()["cached"] == 5
    with TestClient(create_app(catalog), base_url="http://127.0.0.1") as client:
        assert client.get(f"/runs/{again.run_id}").status_code == 200
        page = client.get(f"/runs/{again.run_id}/live")  # what the page fetches after paint
    assert page.status_code == 200
    row = re.search(r'<tr data-step="twice">(.*?)</tr>', page.text, re.S)
    assert row is not None, page.text[:2000]
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row.group(1))
    assert cells[:2] == ["0", "4"]  # ran, cached


@db.step
def twice(x: int) -> int:
    return 2 * x


@db.step
def added(values: list[int]) -> int:
    return sum(values)


@db.pipeline
def doubled(n: int) -> Any:
    return added(values=twice.map(x=list(range(n))))
