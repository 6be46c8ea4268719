"""The synthetic plate: deterministic bytes, OME metadata read back, cells where the table says."""

from __future__ import annotations

from pathlib import Path

import blake3
import numpy as np
import pytest
from bioio import BioImage

import databacked as db
from databacked.examples import make_plate
from databacked.examples.synthetic import HALF_BOX, PIXEL_SIZE_UM

SMALL = {"wells": ("A01", "B02"), "fields": 1, "size": (96, 128)}


def _b3(path: Path) -> str:
    # Plain blake3 of the bytes: what `b3sum` prints and what db.hash_file must agree with.
    digest = blake3.blake3(path.read_bytes()).hexdigest()
    assert db.hash_file(str(path)) == digest
    return digest


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: _b3(p) for p in sorted(folder.rglob("*.ome.tiff"))}


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    first = make_plate(tmp_path / "a", **SMALL)
    second = make_plate(tmp_path / "b", **SMALL)
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")
    assert len(_hashes(tmp_path / "a")) == 2
    assert first.drop(columns="fov_path").equals(second.drop(columns="fov_path"))


def test_another_seed_gives_other_pixels(tmp_path: Path) -> None:
    make_plate(tmp_path / "a", **SMALL)
    make_plate(tmp_path / "b", seed=1, **SMALL)
    a, b = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[name] != b[name] for name in a)


def test_a_field_does_not_depend_on_the_other_wells(tmp_path: Path) -> None:
    make_plate(tmp_path / "one", wells=("A01",), fields=1, size=(96, 128))
    make_plate(tmp_path / "two", wells=("A01", "B02"), fields=1, size=(96, 128))
    assert (
        _hashes(tmp_path / "one")["A01_s1.ome.tiff"] == _hashes(tmp_path / "two")["A01_s1.ome.tiff"]
    )


def test_bioio_reads_channels_pixel_sizes_and_dtype(tmp_path: Path) -> None:
    dataset = make_plate(tmp_path, **SMALL)
    image = BioImage(dataset.fov_path.iloc[0])
    assert image.channel_names == ["dna", "membrane"]
    sizes = image.physical_pixel_sizes
    assert np.allclose([sizes.Y, sizes.X], PIXEL_SIZE_UM)
    data = image.get_image_data("CYX")
    assert data.dtype == np.uint16
    assert data.shape == (2, 96, 128)


def test_one_row_per_cell_with_its_box_on_a_bright_nucleus(tmp_path: Path) -> None:
    dataset = make_plate(tmp_path, **SMALL)
    assert list(dataset.columns) == [
        "plate", "well", "field", "fov_path", "cell_index", "cell_id", "y0", "y1", "x0", "x1",
    ]  # fmt: skip
    assert len(dataset) >= 2
    assert dataset.cell_id.is_unique
    for _, row in dataset.iterrows():
        dna = BioImage(row.fov_path).get_image_data("YX", C=0)
        assert 0 <= row.y0 < row.y1 <= dna.shape[0]
        assert 0 <= row.x0 < row.x1 <= dna.shape[1]
        assert row.y1 - row.y0 == 2 * HALF_BOX
        box = dna[row.y0 : row.y1, row.x0 : row.x1].astype(float)
        centre = box[HALF_BOX - 2 : HALF_BOX + 3, HALF_BOX - 2 : HALF_BOX + 3].mean()
        border = np.concatenate([box[0], box[-1], box[:, 0], box[:, -1]]).mean()
        assert centre > border + 200  # a nucleus in the middle, background at the edge


def test_second_call_leaves_files_untouched_and_repairs_a_changed_one(tmp_path: Path) -> None:
    dataset = make_plate(tmp_path, **SMALL)
    paths = sorted({Path(p) for p in dataset.fov_path})
    before = {p: p.stat().st_mtime_ns for p in paths}
    original = {p: _b3(p) for p in paths}
    again = make_plate(tmp_path, **SMALL)
    assert again.equals(dataset)
    assert {p: p.stat().st_mtime_ns for p in paths} == before

    paths[0].write_bytes(b"not a tiff any more")
    make_plate(tmp_path, **SMALL)
    assert {p: _b3(p) for p in paths} == original


def test_too_small_a_field_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too small"):
        make_plate(tmp_path, size=(16, 16))


def test_names_that_are_not_file_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file names"):
        make_plate(tmp_path, wells=("../A01",))
    assert not any(tmp_path.parent.glob("A01_s*.ome.tiff"))
