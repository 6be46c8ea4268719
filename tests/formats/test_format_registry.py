"""Choosing formats: by extension, by value type, by name/spec, and from plugins."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from databacked.errors import UnknownFormatError
from databacked.formats import (
    Csv,
    Json,
    Npy,
    OmeTiff,
    OmeZarr,
    Parquet,
    Pickle,
    Png,
    Tiff,
    format_for_path,
    format_for_value,
    get_format,
    registry,
    resolve_format,
)
from databacked.store import Store


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a/cell.ome.tiff", OmeTiff),
        ("a/cell.OME.TIF", OmeTiff),
        ("cell.tif", Tiff),
        ("cell.tiff", Tiff),
        ("cell.ome.zarr", OmeZarr),
        ("cell.zarr", OmeZarr),
        ("thumb.png", Png),
        ("t.csv", Csv),
        ("t.parquet", Parquet),
        ("v.json", Json),
        ("v.npy", Npy),
    ],
)
def test_format_for_path_by_longest_extension(path: str, expected: type) -> None:
    assert type(format_for_path(path)) is expected


def test_unknown_extension_is_none_and_resolve_says_what_to_do() -> None:
    assert format_for_path("notes.xyz") is None
    with pytest.raises(UnknownFormatError, match="format="):
        resolve_format("notes.xyz")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.zeros(3), Npy),
        (pd.DataFrame({"a": [1]}), Parquet),
        ({"a": 1}, Json),
        ([1, 2], Json),
        ("text", Json),
        (3, Json),
        (2.5, Json),
        (True, Json),
        (None, Json),
    ],
)
def test_format_for_value(value: Any, expected: type) -> None:
    assert type(format_for_value(value)) is expected


def test_pickle_is_never_chosen_by_default(tmp_path: Path) -> None:
    with pytest.raises(UnknownFormatError, match=r"Pickle\(\)"):
        format_for_value({1, 2})
    assert format_for_path("x.pkl") is None
    assert format_for_path("x.pickle") is None
    with pytest.raises(UnknownFormatError, match="opt in"):
        resolve_format("x.pkl")
    with pytest.raises(UnknownFormatError, match="opt in"):
        resolve_format("x.pkl", value={1, 2})
    assert type(resolve_format("x.pkl", {1, 2}, Pickle())) is Pickle
    assert type(get_format("pickle")) is Pickle  # by explicit name only


def test_resolve_prefers_given_then_extension_then_value() -> None:
    assert resolve_format("a.csv", pd.DataFrame(), Parquet()) == Parquet()
    assert resolve_format("a.csv", pd.DataFrame()) == Csv()
    assert resolve_format("objects/abc", np.zeros(2)) == Npy()


def test_get_format_by_name_spec_class_and_instance() -> None:
    fmt = OmeTiff(dims="ZYX", channel_names=None, physical_pixel_sizes=(1, 2, 3))
    assert get_format(fmt.spec()) == fmt
    assert get_format("ome-tiff") == OmeTiff()
    assert get_format(Csv) == Csv()
    assert get_format(fmt) is fmt
    assert OmeTiff(dims="ZYX") != OmeTiff(dims="CZYX")
    with pytest.raises(UnknownFormatError, match="known formats"):
        get_format("nope")


PLUGIN = """
    from databacked.formats.base import Format


    class Upper(Format):
        name = "upper-text"
        extensions = (".upper",)

        def accepts(self, value):
            return isinstance(value, str)

        def _write(self, value, file):
            file.write(value.upper().encode())
            return {"chars": len(value)}

        def read(self, store, path, *, lazy=False):
            return store.read_bytes(path).decode()
"""


@pytest.fixture
def plugin_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    site = tmp_path / "site"
    site.mkdir()
    (site / "dbk_upper_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "dbk_upper_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dbk-upper-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[databacked.formats]\nupper-text = dbk_upper_plugin:Upper\n"
    )
    monkeypatch.syspath_prepend(str(site))
    registry.reset_plugins()
    yield
    registry.reset_plugins()


def test_entry_point_plugin_by_name_and_extension(plugin_on_path: Any, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    fmt = get_format("upper-text")
    assert fmt.name == "upper-text"
    assert type(format_for_path("shout.upper")) is type(fmt)
    record = resolve_format("shout.upper", "hi").write("hi", store, "shout.upper")
    assert record.format == "upper-text" and record.metadata == {"chars": 2}
    assert store.read_bytes("shout.upper") == b"HI"


def test_without_the_plugin_its_name_is_unknown() -> None:
    registry.reset_plugins()
    with pytest.raises(UnknownFormatError):
        get_format("upper-text")


def test_other_microscopy_files_are_read_through_bioio(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert resolve_format("scan.czi").name == "image"
    with pytest.raises(UnknownFormatError):
        resolve_format("scan.czi", value=np.zeros((2, 2)))  # read-only: no writer for .czi
    # the generic bioio path on a file bioio's tifffile plugin reads: TCZYX, lazily or not
    Tiff().write(np.arange(12, dtype=np.uint8).reshape(3, 4), store, "plain.tif")
    image = get_format("image")
    assert image.read(store, "plain.tif").shape == (1, 1, 1, 3, 4)
    assert image.read(store, "plain.tif", lazy=True).compute().sum() == 66
    assert image.read_metadata(store, "plain.tif")["shape"] == [1, 1, 1, 3, 4]
