"""DESIGN section 4's cells pipeline, end to end: TIFF inputs, OME-TIFF, PNG, CSV, Artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import databacked as db

STEPS = """
import numpy as np
import pandas as pd
import tifffile
import databacked as db

@db.step
def select_cell(fov: db.File, cell_index: int) -> np.ndarray:
    image = tifffile.imread(fov)
    return image[:, :, cell_index * 4 : cell_index * 4 + 4, :].astype(np.uint16)

@db.step(target="normalized/{cell_id}.ome.tiff", format=db.OmeTiff(dims="CZYX"))
def normalize(cell_id: int, cell: np.ndarray) -> np.ndarray:
    return (cell * 2).astype(np.uint16)

@db.step(target="projections/{cell_id}.png")
def project(cell_id: int, normed: np.ndarray) -> np.ndarray:
    return np.asarray(normed).max(axis=(0, 1)).astype(np.uint8)

@db.step(target="summary.csv")
def summarize(cell_ids: list, projections: list) -> pd.DataFrame:
    return pd.DataFrame({"cell_id": cell_ids, "total": [int(p.sum()) for p in projections]})

@db.pipeline
def cells(dataset):
    crops = select_cell.map(fov=dataset.fov_path, cell_index=dataset.cell_index)
    normed = normalize.map(cell_id=dataset.cell_id, cell=crops)
    projections = project.map(cell_id=dataset.cell_id, normed=normed)
    return summarize(cell_ids=list(dataset.cell_id), projections=projections)
"""


@pytest.fixture
def dataset(tmp_path: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    fov = tmp_path / "raw" / "fov1.tif"
    fov.parent.mkdir()
    tifffile.imwrite(
        fov, rng.integers(0, 50, size=(2, 3, 8, 5), dtype=np.uint16), photometric="minisblack"
    )
    return pd.DataFrame({"fov_path": [str(fov)] * 2, "cell_index": [0, 1], "cell_id": [7, 8]})


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_cells_pipeline(write_module, dataset, store_url, catalog_db, executor) -> None:
    mod = write_module("cells", STEPS)
    where = {"store": store_url, "catalog": catalog_db, "executor": executor, "workers": 2}
    result = db.run(mod.cells, dataset, **where)
    assert result.ok, result.summary()
    summary = result.value
    assert isinstance(summary, db.Artifact)
    assert summary.uri.endswith("summary.csv")
    table = summary.load()
    assert list(table.cell_id) == [7, 8]
    normed = db.load(str(Path(store_url, "normalized", "7.ome.tiff")))
    assert np.asarray(normed).squeeze().shape[-2:] == (4, 5)
    assert Path(store_url, "projections", "8.png").exists()
    again = db.run(mod.cells, dataset, **where)
    assert again.counts() == {"ran": 0, "cached": 7, "failed": 0, "skipped": 0}
    assert again.value.hash == summary.hash


ARTIFACT_ARG = """
import numpy as np
import databacked as db

@db.step(target="doubled.npy")
def doubled(image) -> np.ndarray:
    return np.asarray(image.load()) * 2

@db.pipeline
def from_artifact(art):
    return doubled(art)
"""


def test_artifact_argument_is_hashed_by_content(write_module, tmp_path, store_url, catalog_db):
    mod = write_module("artarg", ARTIFACT_ARG)
    where = {"store": store_url, "catalog": catalog_db, "executor": "inline"}
    art = db.save(np.arange(4), str(tmp_path / "in" / "a.npy"))
    first = db.run(mod.from_artifact, art, **where)
    assert list(first.value.load()) == [0, 2, 4, 6]
    same = db.save(np.arange(4), str(tmp_path / "in" / "a.npy"))
    assert db.run(mod.from_artifact, same, **where).counts()["cached"] == 1
    changed = db.save(np.arange(1, 5), str(tmp_path / "in" / "a.npy"))
    rerun = db.run(mod.from_artifact, changed, **where)
    assert rerun.calls.reason[0].startswith("input changed: image = ")
    assert rerun.calls.reason[0].endswith("a.npy")
    assert list(rerun.value.load()) == [2, 4, 6, 8]
