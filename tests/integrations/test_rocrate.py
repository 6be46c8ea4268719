"""``databacked export rocrate``: the demo run as a Provenance Run Crate roc-validator accepts."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import databacked as db
from databacked.catalog import Catalog
from databacked.testing import services

try:
    import rocrate  # noqa: F401
    import rocrate_validator  # noqa: F401
except ImportError:  # pragma: no cover - the extra is missing
    services.unavailable("install databacked[rocrate,test] for the RO-Crate export tests")

from crate_validation import validate

from databacked.integrations.rocrate import export_rocrate


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Seed 000's demo pipeline run once on a small synthetic plate."""
    from databacked.examples import make_plate
    from databacked.examples.cells import cells

    folder = tmp_path_factory.mktemp("demo")
    dataset = make_plate(folder / "raw", wells=("A01", "B02"), fields=1, size=(128, 128))
    catalog_url = f"sqlite:///{folder / 'catalog.db'}"
    result = db.run(
        cells, dataset, store=str(folder / "data"), catalog=catalog_url, executor="inline"
    )
    assert result.ok
    return {"folder": folder, "store": str(folder / "data"), "catalog": catalog_url, "run": result}


def _graph(crate: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads((crate / "ro-crate-metadata.json").read_text())
    return {entity["@id"]: entity for entity in doc["@graph"]}


def _ids(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v["@id"] for v in values if isinstance(v, dict)]


def _required(report: dict[str, Any]) -> list[str]:
    return [
        f"{i['message']} ({i['violatingEntity']})"
        for i in report["issues"]
        if i["severity"] == "REQUIRED"
    ]


def test_demo_crate_validates_and_ties_every_output_to_its_step(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    with Catalog.open(demo["catalog"]) as catalog:
        report = export_rocrate(tmp_path / "crate", catalog, store=demo["store"])
        calls = catalog.calls_of_run(demo["run"].run_id)
    crate = report.path
    validation = validate(crate, tmp_path)
    assert _required(validation) == []
    assert validation["passed"] is True

    graph = _graph(crate)
    root = graph["./"]
    assert "https://w3id.org/ro/wfrun/provenance/0.5" in _ids(root["conformsTo"])
    workflow = graph[root["mainEntity"]["@id"]]
    assert "ComputationalWorkflow" in workflow["@type"]
    assert report.actions == len(calls)
    for call in calls:
        action = graph[f"#call/{call.key}"]
        assert action["@type"] == "CreateAction"
        assert action["actionStatus"]["@id"].endswith("CompletedActionStatus")
        assert action["startTime"] and action["endTime"]
        tool = graph[action["instrument"]["@id"]]
        assert tool["identifier"] == call.fingerprint
        assert tool["alternateName"].startswith("databacked.examples.cells:")
        results = _ids(action["result"])
        for art in call.outputs.values():
            entity = graph[f"data/{art.path}"]
            assert entity["@id"] in results
            payload = crate / entity["@id"]
            assert entity["sha256"] == hashlib.sha256(payload.read_bytes()).hexdigest()
            assert entity["contentSize"] == str(art.size)
            assert entity["identifier"] == f"blake3:{art.hash}"
            assert db.hash_file(payload) == art.hash


def test_crate_carries_image_metadata_parameters_and_software(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    with Catalog.open(demo["catalog"]) as catalog:
        crate = export_rocrate(tmp_path / "crate", catalog, store=demo["store"]).path
    graph = _graph(crate)
    normalized = [g for i, g in graph.items() if i.startswith("data/normalized/")]
    assert normalized
    for image in normalized:
        assert "ImageObject" in image["@type"]
        meta = {graph[i]["name"]: graph[i]["value"] for i in _ids(image["exifData"])}
        assert meta["dims"] == "CYX"
        assert json.loads(meta["channel_names"]) == ["dna", "membrane"]
    raw = [g for i, g in graph.items() if i.startswith("raw/")]
    assert raw and all(len(g["sha256"]) == 64 for g in raw)
    for image in raw:  # source images: OME metadata read from the files themselves
        meta = {graph[i]["name"]: graph[i]["value"] for i in _ids(image["exifData"])}
        assert json.loads(meta["channel_names"]) == ["dna", "membrane"]
        assert set(json.loads(meta["physical_pixel_sizes"])) >= {"Y", "X"}
    select = next(
        g for i, g in graph.items() if i.startswith("#call/") and "select_cell" in g["name"]
    )
    values = {graph[i]["name"] for i in _ids(select["object"]) if i.startswith("#pv/")}
    assert {"y0", "y1", "x0", "x1"} <= values
    for tool in (g for i, g in graph.items() if i.startswith("#step/")):
        inputs = _ids(tool["input"])
        assert len(inputs) == len(set(inputs))  # each parameter listed once
    software = {
        g["name"]: g.get("softwareVersion") for i, g in graph.items() if i.startswith("#software/")
    }
    assert software["databacked"] == db.__version__
    assert "numpy" in software


def test_sha256_is_kept_in_the_catalog_and_no_data_crate_validates(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    with Catalog.open(demo["catalog"]) as catalog:
        export_rocrate(tmp_path / "first", catalog, store=demo["store"])
        summary = catalog.artifact_by_path(str(Path(demo["store"]).resolve()), "summary.csv")
        assert summary is not None
        expected = hashlib.sha256((Path(demo["store"]) / "summary.csv").read_bytes()).hexdigest()
        assert catalog.sha256_get([summary.hash]) == {summary.hash: (expected, summary.size)}
        report = export_rocrate(
            tmp_path / "nodata", catalog, store=demo["store"], targets=["summary.csv"], data=False
        )
    graph = _graph(report.path)
    entity = graph["#file/data/summary.csv"]
    assert entity["sha256"] == expected
    assert entity["contentUrl"] == f"file://{Path(demo['store']).resolve() / 'summary.csv'}"
    assert sorted(p.name for p in report.path.iterdir()) == [
        "pipeline.json",
        "ro-crate-metadata.json",
    ]
    # the lineage of summary.csv only: no projection, normalisation or plate plot
    steps = {g["name"].split()[0] for i, g in graph.items() if i.startswith("#call/")}
    assert steps == {"select_cell", "measure", "summarize"}
    assert _required(validate(report.path, tmp_path)) == []


def test_a_file_changed_since_its_run_is_not_published_as_its_output(tmp_path: Path) -> None:
    @db.step(target="out/{name}.csv")
    def table(name: str) -> Any:
        import pandas as pd

        return pd.DataFrame({"name": [name]})

    @db.pipeline
    def tables() -> Any:
        return [table(name=n) for n in ("a", "b")]

    store = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert db.run(tables, store=str(store), catalog=url, executor="inline").ok
    (store / "out" / "b.csv").write_text("edited by hand\n")
    with Catalog.open(url) as catalog:
        report = export_rocrate(tmp_path / "crate", catalog, store=str(store))
    assert report.changed == ("data/out/b.csv",)
    assert (report.path / "data" / "out" / "a.csv").is_file()
    assert not (report.path / "data" / "out" / "b.csv").exists()
    assert "contentUrl" in _graph(report.path)["#file/data/out/b.csv"]


def test_failed_call_is_a_failed_action_with_its_error(tmp_path: Path) -> None:
    @db.step(target="ok.json")
    def fine() -> dict[str, int]:
        return {"x": 1}

    @db.step(target="never.json")
    def broken(x: int) -> dict[str, int]:
        raise ValueError(f"bad value {x}")

    @db.pipeline
    def mixed() -> Any:
        return [fine(), broken(x=3)]

    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert not db.run(mixed, store=str(tmp_path / "data"), catalog=url, executor="inline").ok
    with Catalog.open(url) as catalog:
        crate = export_rocrate(tmp_path / "crate", catalog, store=str(tmp_path / "data")).path
    actions = [g for g in _graph(crate).values() if g.get("@type") == "CreateAction"]
    failed = [a for a in actions if a["actionStatus"]["@id"].endswith("FailedActionStatus")]
    assert [a["name"].split()[0] for a in failed if a["@id"].startswith("#call/")] == ["broken"]
    assert "ValueError: bad value 3" in failed[0]["error"]


def test_cli_writes_a_zip_and_refuses_to_overwrite(demo: dict[str, Any], tmp_path: Path) -> None:
    from databacked.cli.app import app

    args = ["--store", demo["store"], "--catalog", demo["catalog"]]
    out = tmp_path / "crate.zip"
    first = CliRunner().invoke(app, ["export", "rocrate", str(out), "--zip", *args])
    assert first.exit_code == 0, first.output
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
    assert {"ro-crate-metadata.json", "pipeline.json", "data/summary.csv"} <= names
    again = CliRunner().invoke(app, ["export", "rocrate", str(out), "--zip", *args])
    assert again.exit_code == 2
    assert "already exists" in again.output
    unknown = CliRunner().invoke(
        app, ["export", "rocrate", str(tmp_path / "x"), "--run", "zz", *args]
    )
    assert unknown.exit_code == 2
    assert "no run matching 'zz'" in unknown.output
