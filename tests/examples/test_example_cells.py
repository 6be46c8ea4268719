"""Seed 000's pipeline end to end on the inline executor: native outputs, then all cached."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
from bioio import BioImage

import databacked as db
from databacked.examples import make_plate
from databacked.examples.cells import CHANNELS, cells
from databacked.examples.synthetic import HALF_BOX


@pytest.fixture
def dataset(tmp_path: Path) -> pd.DataFrame:
    return make_plate(tmp_path / "raw", wells=("A01", "B01"), fields=1, size=(96, 128))


def _run(tmp_path: Path, dataset: pd.DataFrame) -> db.RunResult:
    return db.run(
        cells,
        dataset,
        store=str(tmp_path / "data"),
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        executor="inline",
    )


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {status: n for status, n in counts.items() if n}


def test_outputs_in_native_formats_then_everything_cached(
    tmp_path: Path, dataset: pd.DataFrame
) -> None:
    first = _run(tmp_path, dataset)
    assert first.ok, first.summary()
    n_cells = len(dataset)
    n_calls = 4 * n_cells + 2  # select, normalize, project, measure per cell; summary; plot
    assert _nonzero(first.counts()) == {"ran": n_calls}

    data = tmp_path / "data"
    for cell_id in dataset.cell_id:
        normed = BioImage(data / "normalized" / f"{cell_id}.ome.tiff")
        assert normed.channel_names == CHANNELS
        pixels = normed.get_image_data("CYX")
        assert pixels.shape == (2, 2 * HALF_BOX, 2 * HALF_BOX)
        assert pixels.min() >= 0.0 and pixels.max() <= 1.0
        projection = iio.imread(data / "projections" / f"{cell_id}.png")
        assert projection.dtype == np.uint8
        assert projection.shape == (2 * HALF_BOX, 2 * HALF_BOX)

    summary = pd.read_csv(data / "summary.csv")
    assert len(summary) == n_cells
    assert sorted(summary.cell_id) == sorted(dataset.cell_id)
    assert (summary.nucleus_area_um2 > 0).all()
    assert (summary.dna_mean > 0).all()
    plot = iio.imread(data / "plots" / "plate1.png")
    assert plot.dtype == np.uint8
    assert plot.ndim == 3

    second = _run(tmp_path, dataset)
    assert second.ok
    assert _nonzero(second.counts()) == {"cached": n_calls}


def test_a_new_field_runs_only_its_own_cells_and_the_reducers(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    small = make_plate(raw, wells=("A01",), fields=1, size=(96, 128))
    assert _run(tmp_path, small).ok
    bigger = make_plate(raw, wells=("A01",), fields=2, size=(96, 128))
    result = _run(tmp_path, bigger)
    assert result.ok
    new_cells = len(bigger) - len(small)
    assert _nonzero(result.counts()) == {"cached": 4 * len(small), "ran": 4 * new_cells + 2}
