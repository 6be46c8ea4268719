"""The pages in a real Chromium after real runs: what a user clicks through, no console errors."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from databacked.testing import services

Page = Site = Any  # fixtures from conftest.py: a browser tab, a catalog made by real runs


def _rows(tab: Page, selector: str) -> list[Any]:
    return tab.page.locator(selector).all()


def test_runs_newest_first_and_filter_survives_reload(tab: Page, demo_url: str, demo_site: Site):
    tab.open(f"{demo_url}/runs")
    runs = [r.get_attribute("data-run") for r in _rows(tab, "#runs tbody tr")]
    assert runs == [demo_site.run_ids["flaky"], demo_site.run_ids["demo"]]
    tab.page.select_option("select[name=status]", "failed")
    tab.page.click("form.filters button[type=submit]")
    tab.page.wait_for_load_state("networkidle")
    tab.page.reload()
    statuses = [r.get_attribute("data-status") for r in _rows(tab, "#runs tbody tr")]
    assert statuses == ["failed"]
    assert "status=failed" in tab.page.url
    assert tab.errors == []


def test_run_page_lists_failed_call_first_with_its_error(tab: Page, demo_url: str, demo_site: Site):
    tab.open(f"{demo_url}/runs/{demo_site.run_ids['flaky']}")
    first = tab.page.locator("#calls tbody tr").first
    assert first.get_attribute("data-status") == "failed"
    assert "x must not be 3" in first.inner_text()
    assert tab.page.locator("[data-count=failed] .n").inner_text() == "1"
    assert tab.page.locator("#steps tr[data-step=square]").count() == 1
    first.locator("a", has_text="log").click()
    tab.page.wait_for_load_state("networkidle")
    assert "ValueError" in tab.page.locator("#traceback").inner_text()
    assert "squaring 3" in tab.page.locator("#log").inner_text()
    assert tab.errors == []


def test_demo_run_page_counts_match_the_catalog(tab: Page, demo_url: str, demo_site: Site):
    run_id = demo_site.run_ids["demo"]
    tab.open(f"{demo_url}/runs/{run_id}")
    db_file = demo_site.catalog.removeprefix("sqlite:///")
    with sqlite3.connect(db_file) as conn:
        query = "SELECT step, count(*) FROM calls WHERE run_id = ? GROUP BY step"
        per_step = dict(conn.execute(query, (run_id,)))
    shown = {
        row.get_attribute("data-step"): int(row.locator("td").nth(1).inner_text())
        for row in _rows(tab, "#steps tbody tr")
    }
    assert shown == per_step
    assert tab.errors == []


def test_call_page_links_inputs_and_outputs(tab: Page, demo_url: str, demo_site: Site):
    tab.open(f"{demo_url}/artifacts/{demo_site.hashes['tiff']}")
    tab.page.click("#record a.hashlink")  # the producing call
    tab.page.wait_for_load_state("networkidle")
    assert tab.page.locator("h1").inner_text().startswith("normalize")
    assert tab.page.locator("#inputs tbody tr").count() == 1
    assert ".ome.tiff" in tab.page.locator("#outputs").inner_text()
    assert "cell_id" in tab.page.locator("#params").inner_text()
    assert tab.errors == []


def _natural(tab: Page, selector: str) -> tuple[int, int]:
    tab.page.wait_for_function(
        f"() => document.querySelector({selector!r}).complete && "
        f"document.querySelector({selector!r}).naturalWidth > 0"
    )
    size = tab.page.eval_on_selector(selector, "img => [img.naturalWidth, img.naturalHeight]")
    return int(size[0]), int(size[1])


def test_ome_tiff_artifact_shows_metadata_and_thumbnail(tab: Page, demo_url: str, demo_site: Site):
    tab.open(f"{demo_url}/artifacts/{demo_site.hashes['tiff']}")
    ome = tab.page.locator("#ome").inner_text()
    assert "CYX" in ome
    assert "dna, membrane" in ome
    width, _ = _natural(tab, "#thumbnail")
    assert 0 < width <= 512
    tab.page.select_option("#channel", "1")
    tab.page.wait_for_function("() => document.querySelector('#thumbnail').src.includes('c=1')")
    assert _natural(tab, "#thumbnail")[0] > 0
    assert tab.errors == []


def test_ome_zarr_pickers_read_the_smallest_level(tab: Page, demo_url: str, demo_site: Site):
    tab.open(f"{demo_url}/artifacts/{demo_site.hashes['zarr']}")
    assert "Z=5" in tab.page.locator("#ome").inner_text()
    assert tab.page.locator("#zplane option").count() == 5
    assert _natural(tab, "#thumbnail") == (48, 48)  # level 1 of 96x96
    tab.page.select_option("#zplane", "4")
    tab.page.wait_for_function("() => document.querySelector('#thumbnail').src.includes('z=4')")
    assert _natural(tab, "#thumbnail") == (48, 48)
    assert tab.errors == []


def test_table_preview_and_download(tab: Page, demo_url: str, demo_site: Site):
    tab.open(f"{demo_url}/artifacts/{demo_site.hashes['summary']}")
    header = tab.page.locator("#preview-table thead").text_content()
    assert "nucleus_area_um2" in header
    assert tab.page.locator("#preview-table tbody tr").count() > 0
    with tab.page.expect_download() as info:
        tab.page.click("#download")
    assert info.value.suggested_filename == "summary.csv"
    assert tab.errors == []


def test_lineage_svg_names_the_producing_call(tab: Page, demo_url: str, demo_site: Site):
    from databacked.ui.lineage import has_dot

    if not has_dot():
        services.unavailable("Graphviz dot is not installed (apt-get install graphviz)")
    tab.open(f"{demo_url}/lineage/{demo_site.hashes['tiff']}")
    svg = tab.page.locator("#graph svg")
    assert svg.count() == 1
    text = svg.text_content()
    assert "normalize" in text
    assert "select_cell" in text
    assert tab.errors == []


def test_lineage_without_graphviz_is_a_table(demo_site: Site):
    import httpx

    from databacked.ui import create_app
    from databacked.ui.server import background

    with background(create_app(demo_site.catalog, graphviz=False)) as base:
        page = httpx.get(f"{base}/lineage/{demo_site.hashes['tiff']}").text
    assert 'id="lineage-table"' in page
    assert "<svg" not in page.split('id="lineage-table"')[0].split("<main>")[1]
    assert page.count("/calls/") >= 2  # select_cell and normalize (project below)


def test_a_huge_neighbourhood_says_narrow_it(demo_site: Site):
    from databacked.ui import lineage
    from databacked.ui.source import open_catalog

    catalog = open_catalog(demo_site.catalog)
    try:
        with catalog.engine.connect() as conn:
            small = lineage.neighbourhood(conn, demo_site.hashes["tiff"], limit=3)
            whole = lineage.neighbourhood(conn, demo_site.hashes["tiff"])
    finally:
        catalog.close()
    assert small["truncated"] and len(small["nodes"]) <= 3
    assert not whole["truncated"]


def test_markup_in_a_file_name_stays_text(tab: Page, demo_url: str, demo_site: Site):
    tab.open(f"{demo_url}/artifacts/{demo_site.hashes['odd']}")
    tab.page.wait_for_timeout(200)
    assert tab.page.title() != "pwned"
    assert "<img" in tab.page.locator("#record").inner_text()
    tab.open(f"{demo_url}/artifacts?prefix=odd/")
    assert tab.page.title() != "pwned"
    assert tab.errors == []


def test_plate_grid_sites_and_report(tab: Page, plate_url: str, plate_site: Site):
    tab.open(f"{plate_url}/plates")
    tab.page.click("#plates a >> text=plate1")
    tab.page.wait_for_load_state("networkidle")
    cells = tab.page.locator("#plate-grid [data-well]")
    assert cells.count() == 96
    done = {c.get_attribute("data-well") for c in tab.page.locator("[data-status=ok]").all()}
    assert done == {"A01", "A02", "B01"}
    tab.page.locator("[data-well=A02]").click()
    tab.page.wait_for_load_state("networkidle")
    assert "Well A02" in tab.page.locator("#well h2").inner_text()
    images = tab.page.locator("#well img")
    assert images.count() == 4  # 2 sites x 2 channels
    assert _natural(tab, "#well img")[0] > 0
    report = tab.page.locator("#report")
    assert "plot.png" in report.inner_text()
    tab.page.select_option("select[name=measure]", "mean_intensity")
    tab.page.wait_for_function("() => location.search.includes('measure=mean_intensity')")
    assert re.match(r"#[0-9a-f]{6}", tab.page.locator("[data-well=A01]").get_attribute("fill"))
    assert tab.errors == []


def test_pipelines_show_datums_per_capture(tab: Page, plate_url: str):
    tab.open(f"{plate_url}/pipelines")
    assert "measure" in tab.page.locator("#pipelines").inner_text()
    tab.page.click("#pipelines a >> text=measure")
    tab.page.wait_for_load_state("networkidle")
    assert "plate1" in tab.page.locator("#per-capture").inner_text()
    assert tab.page.locator("#datums tbody tr").count() == 6
    assert tab.errors == []
