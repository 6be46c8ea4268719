"""The OME-TIFF UUID comes from the content: same pixels and metadata, same UUID (and file);
other pixels under the same metadata, another UUID. Read back by tifffile and bioio."""

from __future__ import annotations

import re
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile

import databacked as db


def _uuid(path: str | Path) -> str:
    with tifffile.TiffFile(path) as tif:
        match = re.search(r'<OME [^>]*UUID="urn:uuid:([0-9a-f-]{36})"', tif.pages.first.description)
    assert match is not None
    return match[1]


@pytest.mark.parametrize("store", ["local", "memory"])
def test_uuid_follows_the_pixels(tmp_path: Path, store: str) -> None:
    base = str(tmp_path) if store == "local" else f"memory://uuid-{tmp_path.name}"
    fmt = db.OmeTiff(dims="CYX", channel_names=["a", "b"])
    image = np.arange(2 * 16 * 16, dtype="u2").reshape(2, 16, 16)
    one = db.save(image, f"{base}/one.ome.tiff", format=fmt)
    same = db.save(da.from_array(image, chunks=(1, 8, 8)), f"{base}/same.ome.tiff", format=fmt)
    other = db.save(image[:, ::-1].copy(), f"{base}/other.ome.tiff", format=fmt)
    assert one.hash == same.hash  # byte-identical, whether numpy or dask
    assert one.hash != other.hash
    if store == "local":
        assert _uuid(one.uri) == _uuid(same.uri) != _uuid(other.uri)
        assert db.hash_file(one.uri) == one.hash
    assert np.array_equal(db.load(one), image)
    assert db.load(other).shape == (2, 16, 16)
