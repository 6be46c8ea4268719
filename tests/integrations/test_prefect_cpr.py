"""Seed 001 (CPR's README flow) on Prefect 3 with only its imports changed.

denoise -> segment on a DaskTaskRunner (a small loopback LocalCluster): cold, fully cached,
one input image changed, and a target corrupted on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

N_IMAGES = 3


SEED = Path(__file__).with_name("prefect_seed001.txt")
"""Seed 001's README flow, byte for byte except its import lines (kept out of formatters)."""


@pytest.fixture
def seed(databacked_env: dict[str, Any]) -> Any:
    import importlib.machinery
    import importlib.util
    import sys

    name = "prefect_seed001"
    if name not in sys.modules:
        loader = importlib.machinery.SourceFileLoader(name, str(SEED))
        spec = importlib.util.spec_from_loader(name, loader)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        loader.exec_module(module)
    return sys.modules[name]


def _runner() -> Any:
    from databacked.integrations.prefect import DaskTaskRunner

    return DaskTaskRunner(
        cluster_kwargs={"n_workers": 1, "processes": False, "threads_per_worker": 2}
    )


def _images(folder: Path, seed: int = 0) -> list[Path]:
    import tifffile

    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(N_IMAGES):
        path = folder / f"nuclei{i}.tif"
        tifffile.imwrite(path, (rng.random((48, 64)) * 800).astype("uint16"))
        paths.append(path)
    return paths


def _run(seed: Any, images: Path, root: Path) -> Any:
    from prefect_helpers import task_states

    flow = seed.measure_flow.with_options(task_runner=_runner())
    state = flow(
        input_data_dir=str(images),
        result_root_dir=str(root),
        denoise_sigma=2,
        threshold=400,
        return_state=True,
    )
    assert state.is_completed(), state
    return task_states(state, expected=1 + 2 * N_IMAGES)


def _stamps(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_ino)
        for p in sorted(root.glob("*/*.tif"))
    }


def _cli(*args: str) -> str:
    from databacked.cli.app import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_seed001_flow_cold_cached_changed_corrupted(
    seed: Any, databacked_env: dict[str, Any], tmp_path: Path
) -> None:
    import bioio
    import tifffile

    root = databacked_env["store"]
    images = _images(tmp_path / "images")

    # cold: everything runs; outputs are OME-TIFFs with axes and pixel sizes
    states = _run(seed, images[0].parent, root)
    assert states["denoise_image"] == ["Completed"] * N_IMAGES
    assert states["segment_image"] == ["Completed"] * N_IMAGES
    denoised = root / "denoised" / "nuclei0.tif"
    with tifffile.TiffFile(denoised) as tif:
        assert tif.is_ome and tif.series[0].axes == "YX"
    img = bioio.BioImage(denoised)
    assert pytest.approx(0.134) == img.physical_pixel_sizes.Y
    assert pytest.approx(0.134) == img.physical_pixel_sizes.X
    segmented = tifffile.imread(root / "segmented" / "nuclei0.tif")
    assert segmented.dtype == bool and segmented.shape == (48, 64)
    before = _stamps(root)
    assert len(before) == 2 * N_IMAGES

    # cached: no denoise or segment function runs, no output is rewritten
    states = _run(seed, images[0].parent, root)
    assert states["denoise_image"] == ["Cached"] * N_IMAGES
    assert states["segment_image"] == ["Cached"] * N_IMAGES
    assert _stamps(root) == before

    # one input image changed: only its denoise -> segment chain runs again
    changed = (np.random.default_rng(7).random((48, 64)) * 800).astype("uint16")
    tifffile.imwrite(images[1], changed)
    states = _run(seed, images[0].parent, root)
    assert states["denoise_image"] == ["Cached", "Cached", "Completed"]
    assert states["segment_image"] == ["Cached", "Cached", "Completed"]
    after = _stamps(root)
    rewritten = {p for p in after if after[p] != before[p]}
    assert rewritten == {"denoised/nuclei1.tif", "segmented/nuclei1.tif"}

    # a target corrupted on disk is recomputed, never returned: the bytes come back
    target = root / "segmented" / "nuclei2.tif"
    original = target.read_bytes()
    target.write_bytes(original[:-8] + b"corrupt!")
    states = _run(seed, images[0].parent, root)
    assert states["denoise_image"] == ["Cached"] * N_IMAGES
    assert states["segment_image"] == ["Cached", "Cached", "Completed"]
    assert target.read_bytes() == original

    # the catalog knows every file: ls, lineage back to the source image, verify
    catalog = databacked_env["catalog"]
    listing = _cli("ls", "--store", str(root), "--catalog", catalog)
    for i in range(N_IMAGES):
        assert f"segmented/nuclei{i}.tif" in listing
        assert f"denoised/nuclei{i}.tif" in listing
    lineage = _cli("lineage", "segmented/nuclei0.tif", "--store", str(root), "--catalog", catalog)
    assert "denoise_image" in lineage and "segment_image" in lineage
    assert "nuclei0.tif" in lineage.split("denoised/nuclei0.tif")[1]  # the source image
    assert "All 6 artifacts match" in _cli("verify", "--store", str(root), "--catalog", catalog)


def test_records_are_slim_json_pointers(seed: Any, databacked_env: dict[str, Any]) -> None:
    """What Prefect stores per cached task: JSON under 1 KiB with no pickle in it."""
    import prefect.settings

    from databacked.integrations.prefect import ImageTarget, cpr_serializer

    root = databacked_env["store"]
    target = ImageTarget.from_path(
        str(root / "t" / "cell.tif"),
        metadata={"axes": "YX", "unit": "micron"},
        resolution=[1 / 0.2, 1 / 0.2],
    )
    target.set_data(np.arange(64 * 64, dtype="uint16").reshape(64, 64))
    blob = cpr_serializer().dumps(target)
    assert len(blob) < 1024
    data = json.loads(blob)
    assert data["pointer"]["hash"] == target.data_hash
    back = cpr_serializer().loads(blob)
    assert isinstance(back, ImageTarget) and back.get_path() == target.get_path()
    np.testing.assert_array_equal(back.get_data(), target.get_data())
    assert back.get_resolution() == [5.0, 5.0]

    # the Prefect record of each denoise/segment run: JSON under 1 KiB naming no pickle
    images = _images(root.parent / "images")
    _run(seed, images[0].parent, root)
    storage = Path(prefect.settings.PREFECT_LOCAL_STORAGE_PATH.value())
    pointers = []
    for path in storage.iterdir():
        raw = path.read_bytes()
        record = json.loads(raw)
        if isinstance(record, dict) and _serializer_type(record) == "databacked":
            result = json.loads(record["result"])
            if isinstance(result, dict) and "pointer" in result:
                pointers.append(result)
                assert len(raw) < 1024
                assert b"pickle" not in raw
    assert len(pointers) >= 2 * N_IMAGES


def _serializer_type(record: dict[str, Any]) -> str | None:
    return ((record.get("metadata") or {}).get("serializer") or {}).get("type")


def test_csv_source_and_target_round_trip(databacked_env: dict[str, Any]) -> None:
    """CSVTarget writes a CSV (index kept, as CPR does); a changed file is refused on load."""
    import pandas as pd

    from databacked.errors import IntegrityError
    from databacked.integrations import prefect as dbp

    root = databacked_env["store"]
    frame = pd.DataFrame({"area": [3, 5, 8], "label": ["a", "b", "c"]})
    target = dbp.CSVTarget.from_path(str(root / "tables" / "cells.csv"))
    target.set_data(frame)
    pd.testing.assert_frame_equal(pd.read_csv(root / "tables" / "cells.csv", index_col=0), frame)
    back = dbp.cpr_serializer().loads(dbp.cpr_serializer().dumps(target))
    pd.testing.assert_frame_equal(back.get_data(), frame)

    source = dbp.CSVSource.from_path(str(root / "tables" / "cells.csv"))
    assert source.get_name() == "cells" and len(source.get_data()) == 3
    assert source.content_hash() == target.data_hash  # keyed by content, like a target

    (root / "tables" / "cells.csv").write_text(",area,label\n0,99,z\n")
    blob = dbp.cpr_serializer().dumps(target)
    with pytest.raises(IntegrityError):
        dbp.cpr_serializer().loads(blob)
