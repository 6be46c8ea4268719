"""Thumbnails read the smallest pyramid level of real files, one plane, stretched per channel."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from databacked.store import Store
from databacked.ui import images
from databacked.ui.content import Located


def test_a_pyramidal_ome_tiff_thumbnail_comes_from_its_smallest_level(tmp_path: Path):
    data = np.zeros((2, 1024, 1024), np.uint16)
    data[0, :512] = 1000  # channel 0: top half bright
    data[1, :, :512] = 3000  # channel 1: left half bright
    with tifffile.TiffWriter(tmp_path / "pyr.ome.tif", ome=True) as tif:
        tif.write(data, subifds=2, metadata={"axes": "CYX"})
        tif.write(data[:, ::2, ::2], subfiletype=1)
        tif.write(data[:, ::4, ::4], subfiletype=1)
    located = Located(Store(tmp_path), "pyr.ome.tif", "h", "ome-tiff", None, False)
    with images.smallest_level(located) as (axes, level):
        assert (axes, level.shape) == ("CYX", (2, 256, 256))
    first = iio.imread(images.render(located, c=0, size=512))
    assert first.shape == (256, 256)
    assert first[:128].mean() > 200 and first[128:].mean() < 50
    second = iio.imread(images.render(located, c=1, size=64))
    assert second.shape == (64, 64)
    assert second[:, :32].mean() > 200 and second[:, 32:].mean() < 50
    both = iio.imread(images.render(located))
    assert both.shape == (256, 256, 3)  # channels coloured and added


def test_z_picks_the_plane(tmp_path: Path):
    stack = np.zeros((5, 64, 64), np.uint16)
    stack[4, 10:20, 10:20] = 500
    tifffile.imwrite(tmp_path / "z.ome.tif", stack, ome=True, metadata={"axes": "ZYX"})
    located = Located(Store(tmp_path), "z.ome.tif", "h", "ome-tiff", None, False)
    assert iio.imread(images.render(located, z=4)).max() == 255
    assert iio.imread(images.render(located, z=0)).max() == 0  # a flat plane stays black
