"""Formats: how a Python value becomes the bytes of a native file, and back.

``OmeTiff``, ``Tiff``, ``OmeZarr``, ``Png``, ``Csv``, ``Parquet``, ``Json``, ``Npy`` and the
opt-in ``Pickle``; the registry picks one by extension or by value type.
"""

from __future__ import annotations

from databacked.formats.base import ArtifactRecord, Format
from databacked.formats.png import Png
from databacked.formats.registry import (
    format_for_path,
    format_for_value,
    get_format,
    resolve_format,
)
from databacked.formats.simple import Json, Npy, Pickle
from databacked.formats.tables import Csv, Parquet
from databacked.formats.tiff import OmeTiff, Tiff
from databacked.formats.zarr import OmeZarr

__all__ = [
    "ArtifactRecord",
    "Csv",
    "Format",
    "Json",
    "Npy",
    "OmeTiff",
    "OmeZarr",
    "Parquet",
    "Pickle",
    "Png",
    "Tiff",
    "format_for_path",
    "format_for_value",
    "get_format",
    "resolve_format",
]
