"""Image previews: OME metadata, and PNG thumbnails contrast-stretched per channel.

A thumbnail reads the smallest level of a pyramid (OME-Zarr multiscales, OME-TIFF SubIFDs),
one T and Z plane, strides it down to at most ``size`` pixels and stretches each channel
between its 0.5th and 99.5th percentile. Thumbnails are addressed by content hash, so a
rendered one never goes stale: an in-memory LRU keeps the latest few hundred.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from databacked.errors import DatabackedError

if TYPE_CHECKING:
    from databacked.ui.content import Located

IMAGE_FORMATS = ("ome-tiff", "tiff", "ome-zarr", "png")
COLOURS = [
    (0.25, 0.55, 1.0),  # blue
    (0.2, 1.0, 0.3),  # green
    (1.0, 0.3, 0.3),  # red
    (1.0, 0.3, 1.0),  # magenta
    (1.0, 0.85, 0.2),  # yellow
    (0.3, 1.0, 1.0),  # cyan
]
"""Additive colours of channels in a composite (channel i gets COLOURS[i % 6])."""


class NotAnImage(DatabackedError, ValueError):
    """The artifact is not an image the UI can preview."""


def is_image(fmt: str) -> bool:
    return fmt in IMAGE_FORMATS


@contextmanager
def smallest_level(located: Located) -> Iterator[tuple[str, Any]]:
    """(axes, array) of the smallest pyramid level, axes in 'TCZYXS'; indexing the array
    reads only the chunks or TIFF pages asked for (zarr / tifffile's zarr view)."""
    if located.format == "ome-zarr":
        yield _zarr_level(located)
    elif located.format in ("ome-tiff", "tiff"):
        import tifffile
        import zarr

        with located.store.open(located.path) as fh, tifffile.TiffFile(fh) as tif:
            series = tif.series[0]
            level = series.levels[-1] if getattr(series, "levels", None) else series
            axes = series.axes.upper().replace("Q", "C").replace("I", "Z")
            with level.aszarr() as view:
                yield axes, zarr.open(view, mode="r")
    elif located.format == "png":
        import imageio.v3 as iio

        with located.store.open(located.path) as fh:
            array = np.asarray(iio.imread(fh.read(), extension=".png"))
        yield ("YXS" if array.ndim == 3 else "YX"), array
    else:
        raise NotAnImage(f"{located.path} ({located.format or 'unknown format'}) is not an image.")


def _zarr_level(located: Located) -> tuple[str, Any]:
    import zarr

    from databacked.formats.images import location

    url, options = location(located.store, located.path)
    group = zarr.open_group(url, mode="r", storage_options=options or None)
    attrs = dict(group.attrs)
    multiscales = attrs.get("ome", attrs).get("multiscales") or [{}]
    axes = "".join(str(a.get("name", "?")) for a in multiscales[0].get("axes", [])).upper()
    datasets = multiscales[0].get("datasets") or [{"path": "0"}]
    return axes, group[datasets[-1]["path"]]


def metadata_of(located: Located, recorded: dict[str, Any]) -> dict[str, Any]:
    """Dims, sizes, channel names and pixel sizes (µm): the recorded ones, else read."""
    meta = dict(recorded or {})
    if "dims" in meta and "shape" in meta:
        return meta
    try:
        axes, array = _full_shape(located)
    except Exception:  # an unreadable file still gets a page, without metadata
        return meta
    meta.setdefault("dims", axes)
    meta.setdefault("shape", list(array))
    return meta


def _full_shape(located: Located) -> tuple[str, list[int]]:
    if located.format in ("ome-tiff", "tiff"):
        import tifffile

        with located.store.open(located.path) as fh, tifffile.TiffFile(fh) as tif:
            series = tif.series[0]
            return series.axes.upper(), [int(n) for n in series.shape]
    with smallest_level(located) as (axes, array):
        return axes, [int(n) for n in array.shape]


def sizes(meta: dict[str, Any]) -> dict[str, int]:
    """Axis -> length, from recorded dims and shape."""
    dims, shape = str(meta.get("dims") or ""), meta.get("shape") or []
    return {d: int(n) for d, n in zip(dims, shape, strict=False)}


def _plane(axes: str, array: Any, t: int, z: int) -> tuple[np.ndarray, bool]:
    """(C, Y, X) float plane at (t, z) (or (Y, X, S) RGB with True), strided lazily."""
    index: list[Any] = []
    for axis, n in zip(axes, array.shape, strict=True):
        if axis == "T":
            index.append(min(max(t, 0), n - 1))
        elif axis == "Z":
            index.append(min(max(z, 0), n - 1))
        else:
            index.append(slice(None))
    plane = np.asarray(array[tuple(index)])
    kept = "".join(a for a in axes if a not in "TZ")
    if "S" in kept:
        order = [kept.index(a) for a in "YXS"]
        return np.transpose(plane, order), True
    if "C" not in kept:
        plane, kept = plane[np.newaxis], "C" + kept
    return np.transpose(plane, [kept.index(a) for a in "CYX"]), False


def _stretch(channel: np.ndarray) -> np.ndarray:
    channel = channel.astype(np.float32)
    finite = np.isfinite(channel)
    if not finite.any():
        return np.zeros(channel.shape, np.float32)
    low, high = np.percentile(channel[finite], (0.5, 99.5))
    if high <= low:
        high = low + 1.0
    # NaN and infinities (empty regions of float images) show as black, not as noise.
    return np.clip(np.nan_to_num((channel - low) / (high - low), nan=0.0), 0.0, 1.0)


def render(
    located: Located, *, c: int | None = None, z: int | None = None, t: int = 0, size: int = 256
) -> bytes:
    """A PNG of one plane: channel ``c`` in grey, or all channels coloured and added."""
    import imageio.v3 as iio

    with smallest_level(located) as (axes, array):
        if not set(axes) <= set("TCZYXS") or len(axes) != array.ndim:
            raise NotAnImage(f"{located.path}: cannot read axes {axes!r} as an image.")
        depth = array.shape[axes.index("Z")] if "Z" in axes else 1
        plane, rgb = _plane(axes, array, t, depth // 2 if z is None else z)
    height, width = plane.shape[:2] if rgb else plane.shape[1:]
    step = max(1, -(-max(height, width) // size))
    if rgb:
        image = plane[::step, ::step, :3]
        if image.dtype != np.uint8:
            image = (_stretch(image) * 255).astype(np.uint8)
    else:
        small = plane[:, ::step, ::step]
        if c is not None:
            image = (_stretch(small[min(max(c, 0), small.shape[0] - 1)]) * 255).astype(np.uint8)
        elif small.shape[0] == 1:
            image = (_stretch(small[0]) * 255).astype(np.uint8)
        else:
            out = np.zeros((*small.shape[1:], 3), np.float32)
            for i, channel in enumerate(small):
                out += _stretch(channel)[..., np.newaxis] * np.asarray(COLOURS[i % len(COLOURS)])
            image = (np.clip(out, 0, 1) * 255).astype(np.uint8)
    return iio.imwrite("<bytes>", np.ascontiguousarray(image), extension=".png")


class ThumbnailCache:
    """Rendered thumbnails by (hash, c, z, t, size): bytes never change for a hash."""

    def __init__(self, entries: int = 512) -> None:
        self._entries = entries
        self._data: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            data = self._data.get(key)
            if data is not None:
                self._data.move_to_end(key)
            return data

    def put(self, key: tuple[Any, ...], data: bytes) -> None:
        with self._lock:
            self._data[key] = data
            self._data.move_to_end(key)
            while len(self._data) > self._entries:
                self._data.popitem(last=False)


__all__ = ["IMAGE_FORMATS", "NotAnImage", "ThumbnailCache", "is_image", "metadata_of", "render"]
