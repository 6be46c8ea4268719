"""Seed 000's last-mile library on Prefect 3: task(result=..., target=...) mapped over a table.

The same pipeline runs on a local folder and on S3 (moto's server) changing only the result
class; outputs open in tifffile and bioio with their dims and channel names; a miss and a hit
hand downstream the same values; a comment keeps the cache and a changed literal re-runs.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TEMPLATE = Path(__file__).with_name("prefect_seed000.txt")
_names = itertools.count()


def _module(folder: Path, result: str, staging: str, edit: tuple[str, str] | None = None) -> Any:
    """The seed pipeline as a module file, with its result class (and an optional edit)."""
    text = TEMPLATE.read_text()
    text = text.replace("DATASET_RESULT", result.replace("Result", "DatasetResult"))
    text = text.replace("RESULT(", f"{result}(").replace("STAGING", repr(staging))
    if edit is not None:
        assert edit[0] in text
        text = text.replace(*edit)
    name = f"seed000_{next(_names)}"
    path = folder / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture
def dataset(tmp_path: Path) -> Any:
    """Two FOVs (CZYX OME-TIFFs), two cells each."""
    import pandas as pd

    import databacked as db

    rng = np.random.default_rng(3)
    rows = []
    for fov in range(2):
        path = tmp_path / "fovs" / f"fov{fov}.ome.tiff"
        pixels = (rng.random((2, 3, 16, 20)) * 1000).astype("uint16")
        db.save(pixels, path, format=db.OmeTiff(dims="CZYX", channel_names=["dna", "membrane"]))
        for cell_index in range(2):
            rows.append(
                {"fov_path": str(path), "cell_index": cell_index, "cell_id": 10 * fov + cell_index}
            )
    return pd.DataFrame(rows)


def _run(module: Any, dataset: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    from prefect_helpers import task_states

    state = module.example_workflow(dataset, return_state=True)
    assert state.is_completed(), state
    return state.result(), task_states(state, expected=13)  # 4 x 3 mapped + describe


def _check_ome(data: bytes, local_copy: Path) -> None:
    import bioio
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        assert tif.is_ome and tif.series[0].axes == "CZYX"
        assert tif.series[0].shape == (2, 3, 8, 20)
    local_copy.write_bytes(data)
    img = bioio.BioImage(local_copy)
    assert img.channel_names == ["dna", "membrane"]
    assert img.dims.order == "TCZYX" and (img.dims.C, img.dims.Z, img.dims.Y) == (2, 3, 8)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_seed000_pipeline_local_and_s3(
    where: str, dataset: Any, databacked_env: dict[str, Any], tmp_path: Path, request: Any
) -> None:
    from databacked.store import Store

    if where == "local":
        result, staging = "LocalResult", str(databacked_env["store"]) + "/local_staging/"
    else:
        bucket = request.getfixturevalue("s3_bucket")
        result, staging = "S3Result", f"{bucket}/local_staging/"
    module = _module(tmp_path, result, staging)
    store = Store(staging.rstrip("/"))

    cold, states = _run(module, dataset)
    assert states["normalize_cell"] == ["Completed"] * 4
    assert states["project_cell"] == ["Completed"] * 4
    assert cold["types"] == ["Array"]  # downstream got dask arrays read back from the files
    names = {info.path for info in store.list()}
    assert {f"normalized_cells/{c}.ome.tiff" for c in (0, 1, 10, 11)} <= names
    assert {f"projections/{c}.png" for c in (0, 1, 10, 11)} <= names
    _check_ome(store.read_bytes("normalized_cells/11.ome.tiff"), tmp_path / "copy.ome.tiff")
    import imageio.v3 as iio

    png = iio.imread(io.BytesIO(store.read_bytes("projections/11.png")), extension=".png")
    assert png.shape == (8, 20) and png.dtype == np.uint8

    # the dataset-level manifest: one row per cell with its file, hash and mapped parameter
    import pandas as pd

    manifest = pd.read_parquet(io.BytesIO(store.read_bytes("normalized_cells/dataset.parquet")))
    assert list(manifest["cell_id"]) == [0, 1, 10, 11]
    assert list(manifest["path"]) == [f"{c}.ome.tiff" for c in (0, 1, 10, 11)]  # beside it
    assert all(len(h) == 64 for h in manifest["hash"])

    # a projection deleted: only it re-runs, fed by normalize's cache hit; same results
    store.delete("projections/10.png")
    before = store.read_bytes("projections/11.png")
    warm, states = _run(module, dataset)
    assert states["normalize_cell"] == ["Cached"] * 4
    assert states["project_cell"] == ["Cached", "Cached", "Cached", "Completed"]
    assert warm == cold
    assert store.read_bytes("projections/11.png") == before
    assert store.exists("projections/10.png")


def test_comment_keeps_cache_literal_or_helper_reruns(
    dataset: Any, databacked_env: dict[str, Any], tmp_path: Path
) -> None:
    staging = str(databacked_env["store"]) + "/local_staging/"
    cold, _ = _run(_module(tmp_path, "LocalResult", staging), dataset)

    commented = _module(
        tmp_path,
        "LocalResult",
        staging,
        ("    return brighten(", "    # a comment changes nothing\n    return brighten("),
    )
    again, states = _run(commented, dataset)
    assert states["normalize_cell"] == ["Cached"] * 4
    assert states["project_cell"] == ["Cached"] * 4
    assert again == cold

    for edit in (
        ("normed_cell[0].max(axis=0)", "normed_cell[1].max(axis=0)"),  # a literal in the task
        ("image * 1.0", "image * 2.0"),  # a project-local helper the task calls
    ):
        _, states = _run(_module(tmp_path, "LocalResult", staging, edit), dataset)
        assert states["normalize_cell"] == ["Cached"] * 4
        assert states["project_cell"] == ["Completed"] * 4


def test_task_without_result_is_plain_prefect_task(databacked_env: dict[str, Any]) -> None:
    import prefect

    from databacked.integrations.prefect import task

    @task(retries=1)
    def plain(x: int) -> int:
        return x + 1

    assert isinstance(plain, prefect.Task) and plain.retries == 1


def test_failing_task_keeps_its_error(databacked_env: dict[str, Any], tmp_path: Path) -> None:
    """A task that raises fails with its own exception (it passes the JSON serializer too)."""
    from prefect import flow

    from databacked.integrations.prefect import LocalResult, task

    @task(result=LocalResult(dir=tmp_path / "out"), target=lambda **kwargs: "x.npy")
    def broken(x: int) -> Any:
        raise ValueError(f"bad input {x}")

    @flow
    def runs_broken() -> Any:
        return broken(3)

    state = runs_broken(return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match="bad input 3"):
        state.result()
    assert not (tmp_path / "out" / "x.npy").exists()
