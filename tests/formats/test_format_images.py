"""OmeTiff, Tiff, OmeZarr and Png: the contract, and read back by bioio/tifffile/imageio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import dask.array as da
import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from bioio import BioImage

from databacked.errors import CorruptFileError, FormatError
from databacked.formats import OmeTiff, OmeZarr, Png, Tiff
from databacked.store import Store
from databacked.testing.format_contract import FormatContract


def _stack() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 60000, size=(2, 3, 32, 24), dtype=np.uint16)


class TestOmeTiff(FormatContract):
    @pytest.fixture
    def format(self) -> OmeTiff:
        return OmeTiff(
            dims="CZYX", channel_names=["dna", "membrane"], physical_pixel_sizes=(1.0, 0.25, 0.25)
        )

    @pytest.fixture
    def sample_value(self) -> np.ndarray:
        return _stack()


class TestTiff(FormatContract):
    @pytest.fixture
    def format(self) -> Tiff:
        return Tiff()

    @pytest.fixture
    def sample_value(self) -> np.ndarray:
        return _stack()[0]


class TestOmeZarr(FormatContract):
    @pytest.fixture
    def format(self) -> OmeZarr:
        return OmeZarr(dims="CZYX", channel_names=["dna", "membrane"], chunks=(1, 1, 16, 16))

    @pytest.fixture
    def sample_value(self) -> np.ndarray:
        return _stack()


class TestPng(FormatContract):
    @pytest.fixture
    def format(self) -> Png:
        return Png()

    @pytest.fixture
    def sample_value(self) -> np.ndarray:
        return np.arange(32 * 24, dtype=np.uint8).reshape(32, 24)

    @pytest.fixture
    def refused_value(self) -> np.ndarray:
        return np.zeros((2, 2, 2, 4, 4), dtype=np.uint8)


def test_ome_tiff_read_back_by_bioio_and_tifffile(tmp_path: Path) -> None:
    store = Store(tmp_path)
    names = ["dna", "membrane"]
    fmt = OmeTiff(dims="CZYX", channel_names=names, physical_pixel_sizes=(2, 0.5, 0.4))
    fmt.write(_stack(), store, "cell.ome.tiff")
    image = BioImage(tmp_path / "cell.ome.tiff")
    assert image.channel_names == ["dna", "membrane"]
    assert image.dims.C == 2 and image.dims.Z == 3 and image.dims.Y == 32 and image.dims.X == 24
    assert tuple(image.physical_pixel_sizes) == (2.0, 0.5, 0.4)
    np.testing.assert_array_equal(image.get_image_data("CZYX"), _stack())
    with tifffile.TiffFile(tmp_path / "cell.ome.tiff") as tif:
        assert tif.is_ome
        assert tif.series[0].axes == "CZYX"
        assert 'Name="membrane"' in tif.ome_metadata
        np.testing.assert_array_equal(tif.asarray(), _stack())
    meta = fmt.read_metadata(store, "cell.ome.tiff")
    assert meta["dims"] == "CZYX" and meta["shape"] == [2, 3, 32, 24]
    assert meta["channel_names"] == ["dna", "membrane"]
    assert meta["physical_pixel_sizes"] == {"Z": 2.0, "Y": 0.5, "X": 0.4}


def test_ome_tiff_without_dims_reads_back_in_written_dims(tmp_path: Path) -> None:
    store = Store(tmp_path)
    plane = _stack()[0, 0]
    OmeTiff().write(plane, store, "plane.ome.tiff")
    assert OmeTiff().read(store, "plane.ome.tiff").shape == plane.shape
    lazy = OmeTiff().read(store, "plane.ome.tiff", lazy=True)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), plane)


def test_ome_tiff_shape_mismatches_are_refused_before_writing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(FormatError, match="expects 5"):
        OmeTiff(dims="TCZYX").write(_stack(), store, "a.ome.tiff")
    with pytest.raises(FormatError, match="3 channel names for 2"):
        OmeTiff(dims="CZYX", channel_names=["a", "b", "c"]).write(_stack(), store, "a.ome.tiff")
    with pytest.raises(FormatError, match="not valid"):
        OmeTiff(dims="XYQ")
    assert list(store.list()) == []


def _count_chunk_computes() -> tuple[list[int], Any]:
    sizes: list[int] = []

    class Counter(dask.callbacks.Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
            if isinstance(result, np.ndarray):
                sizes.append(result.nbytes)

    return sizes, Counter()


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        (OmeTiff(dims="CZYX"), "big.ome.tiff"),
        (OmeZarr(dims="CZYX"), "big.ome.zarr"),
        (Tiff(), "big.tif"),
    ],
    ids=["ome-tiff", "ome-zarr", "tiff"],
)
def test_dask_array_is_written_without_materialising_it(
    fmt: Any, name: str, tmp_path: Path
) -> None:
    store = Store(tmp_path)
    big = da.ones((2, 4, 256, 256), dtype=np.uint16, chunks=(1, 1, 256, 256)) * 3
    sizes, counter = _count_chunk_computes()
    with counter:
        record = fmt.write(big, store, name)
    whole = big.nbytes
    assert sizes, "nothing was computed through dask"
    assert max(sizes) <= whole // 8  # never more than one plane at a time
    np.testing.assert_array_equal(fmt.read(store, name), np.full(big.shape, 3, np.uint16))
    if not fmt.directory:  # (a Zarr keeps the dask chunking, so its chunk files differ)
        # the same pixels as a numpy array give the same bytes
        assert fmt.write(big.compute(), store, "numpy-" + name).hash == record.hash


def test_ome_zarr_read_back_by_bioio(tmp_path: Path) -> None:
    store = Store(tmp_path)
    names = ["dna", "membrane"]
    fmt = OmeZarr(dims="CZYX", channel_names=names, physical_pixel_sizes=(1, 0.5, 0.5))
    record = fmt.write(_stack(), store, "cell.ome.zarr")
    assert record.metadata["channel_names"] == ["dna", "membrane"]
    image = BioImage(tmp_path / "cell.ome.zarr")
    assert image.channel_names == ["dna", "membrane"]
    assert image.dims.C == 2 and image.dims.Z == 3
    assert tuple(image.physical_pixel_sizes) == (1.0, 0.5, 0.5)
    np.testing.assert_array_equal(image.get_image_data("CZYX"), _stack())
    meta = OmeZarr().read_metadata(store, "cell.ome.zarr")
    assert {k: meta[k] for k in ("dims", "shape", "channel_names")} == {
        k: record.metadata[k] for k in ("dims", "shape", "channel_names")
    }
    # without dims the file's own axes are used; lazy gives dask
    np.testing.assert_array_equal(OmeZarr().read(store, "cell.ome.zarr"), _stack())
    assert isinstance(OmeZarr().read(store, "cell.ome.zarr", lazy=True), da.Array)


def test_ome_zarr_multiscale_levels(tmp_path: Path) -> None:
    store = Store(tmp_path)
    OmeZarr(dims="ZYX", multiscale=3).write(_stack()[0], store, "p.ome.zarr")
    assert sorted(p.name for p in (tmp_path / "p.ome.zarr").iterdir()) == [
        "s0",
        "s1",
        "s2",
        "zarr.json",
    ]


def test_png_keeps_8_and_16_bit_integer_values_as_they_are(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ramp = np.linspace(1000, 5000, 64 * 64).reshape(64, 64)
    for i, data in enumerate([ramp.astype(np.uint16), (ramp / 40).astype(np.uint8)]):
        record = Png().write(data, store, f"k{i}.png")
        back = iio.imread(tmp_path / f"k{i}.png")  # read back by imageio, not by us
        assert back.dtype == data.dtype
        np.testing.assert_array_equal(back, data)
        assert record.metadata["stretched"] is False
        assert Png().lost(record.metadata) == ""
    labels = np.arange(64 * 64, dtype=np.int64).reshape(64, 64)  # fits 16 bits: kept
    Png().write(labels, store, "labels.png")
    np.testing.assert_array_equal(Png().read(store, "labels.png"), labels)


def test_png_stretches_floats_and_when_asked(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ramp = np.linspace(1000, 5000, 64 * 64).reshape(64, 64)
    for i, (data, fmt) in enumerate(
        [(ramp.astype(np.float32), Png()), (ramp.astype(np.uint16), Png(stretch=True))]
    ):
        record = fmt.write(data, store, f"r{i}.png")
        back = Png().read(store, f"r{i}.png")
        assert back.dtype == np.uint8 and back.shape == (64, 64)
        assert back.min() == 0 and back.max() == 255
        assert record.metadata["source_dtype"] == str(data.dtype)
        assert record.metadata["stretched"] is True
        assert "stretched to 8 bits" in Png().lost(record.metadata)
    assert Png(stretch=True).lossy and not Png().lossy
    with pytest.raises(FormatError, match="without changing its values"):
        Png(stretch=False).write(ramp.astype(np.float32), store, "no.png")
    assert not (tmp_path / "no.png").exists()


def test_png_rgb_uint8_is_written_as_is(tmp_path: Path) -> None:
    store = Store(tmp_path)
    rgb = np.random.default_rng(1).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    Png().write(rgb, store, "rgb.png")
    np.testing.assert_array_equal(Png().read(store, "rgb.png"), rgb)
    with pytest.raises(FormatError, match="not valid"):
        Png(percentiles=(50, 10))


def test_reading_in_other_dims_reorders_or_pads(tmp_path: Path) -> None:
    store = Store(tmp_path)
    OmeTiff(dims="CZYX").write(_stack(), store, "c.ome.tiff")
    swapped = OmeTiff(dims="ZCYX").read(store, "c.ome.tiff")
    np.testing.assert_array_equal(swapped, _stack().transpose(1, 0, 2, 3))
    OmeZarr(dims="ZYX").write(_stack()[0], store, "z.ome.zarr")
    padded = OmeZarr(dims="CZYX").read(store, "z.ome.zarr")  # through bioio
    np.testing.assert_array_equal(padded, _stack()[:1])


def test_truncated_tiff_is_a_corrupt_file_error(tmp_path: Path) -> None:
    store = Store(tmp_path)
    OmeTiff(dims="CZYX").write(_stack(), store, "t.ome.tiff")
    store.put_bytes("t.ome.tiff", store.read_bytes("t.ome.tiff")[:100])
    with pytest.raises(CorruptFileError, match=r"t\.ome\.tiff"):
        OmeTiff().read(store, "t.ome.tiff")


class TestOmeTiffOnS3(TestOmeTiff):
    """The same contract on an object store (moto's S3 server): no local paths, no rename."""

    @pytest.fixture
    def store(self, s3_bucket: str) -> Store:
        return Store(f"{s3_bucket}/formats")


class TestOmeZarrOnS3(TestOmeZarr):
    @pytest.fixture
    def store(self, s3_bucket: str) -> Store:
        return Store(f"{s3_bucket}/formats")
