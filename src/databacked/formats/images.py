"""Reading images through bioio, so every file bioio can read works as an input.

Formats call these helpers; a store gives either a local path or a fsspec URL plus the store's
storage options (credentials stay inside the Store object).
"""

from __future__ import annotations

from typing import Any

from databacked.errors import DatabackedError
from databacked.formats.base import Format

_READERS = {"ome-tiff": "bioio_ome_tiff", "ome-zarr": "bioio_ome_zarr", "tiff": "bioio_tifffile"}


def is_array(value: Any) -> bool:
    """A numpy or dask array (dask is not imported to find out)."""
    module = type(value).__module__.split(".")[0]
    return module in ("numpy", "dask") and hasattr(value, "shape") and hasattr(value, "dtype")


_DEFAULT_DIMS = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}


def dims_for(value: Any, dims: str | None) -> str:
    """The given dims, or the usual ones for the array's number of dimensions."""
    return dims if dims is not None else _DEFAULT_DIMS.get(value.ndim, "?" * value.ndim)


def check_image(fmt: str, value: Any, dims: str | None, names: Any, path: str) -> str:
    """The dims of ``value`` (given or defaulted), refusing a dims or channel-name mismatch
    with one sentence before anything is written."""
    from databacked.errors import FormatError

    dims = dims_for(value, dims)
    if value.ndim != len(dims) or "?" in dims:
        raise FormatError(
            f"An array of shape {tuple(value.shape)} has {value.ndim} dimensions but "
            f"{fmt}(dims={dims!r}) for {path!r} expects {len(dims)}; "
            "pass dims= that match the array."
        )
    channels = value.shape[dims.index("C")] if "C" in dims else 1
    if names is not None and len(names) != channels:
        raise FormatError(
            f"{fmt} for {path!r} got {len(names)} channel names for {channels} "
            f"channel(s) (shape {tuple(value.shape)}, dims {dims!r}); "
            "give one name per channel."
        )
    return dims


def location(store: Any, path: str) -> tuple[str, dict[str, Any]]:
    """Where a library can open ``path``: a local path, or a fsspec URL and its options."""
    if store.is_local:
        return str(store.full_path(path)), {}
    return f"{store.protocol}://{store.full_path(path).lstrip('/')}", dict(store.storage_options)


def bioimage(fmt: Any, store: Any, path: str) -> Any:
    """A ``bioio.BioImage`` of the file, with the reader plugin of ``fmt`` when it has one."""
    import importlib

    from bioio import BioImage

    store.info(path)  # a missing file is ArtifactNotFound, not a reader error
    url, options = location(store, path)
    reader_module = _READERS.get(getattr(fmt, "name", ""))
    kwargs: dict[str, Any] = {"fs_kwargs": options} if options else {}
    if reader_module is not None:
        kwargs["reader"] = importlib.import_module(reader_module).Reader
    try:
        return BioImage(url, **kwargs)
    except DatabackedError:
        raise
    except Exception as exc:  # bioio raises many kinds for unreadable bytes
        from databacked.formats.base import corrupt

        raise corrupt(fmt, store, path, exc) from exc


def read_image(fmt: Any, store: Any, path: str, *, dims: str | None, lazy: bool) -> Any:
    """The pixels as numpy (or dask when ``lazy``), in ``dims`` order when given."""
    image = bioimage(fmt, store, path)
    if dims is None:
        # keep the file's own dims, dropping the singleton ones bioio adds (T, C, Z)
        dims = "".join(d for d, n in zip(image.dims.order, image.shape, strict=True) if n > 1)
        dims = dims if dims.endswith("YX") or dims.endswith("S") else image.dims.order
    if lazy and getattr(store, "protocol", "") == "memory":
        # fsspec's memory filesystem hands every reader the same file object, so the chunks
        # of a lazy read, computed in threads, would race on its position; the bytes are in
        # RAM already, so read them once and wrap them.
        import dask.array as da

        return da.from_array(image.get_image_data(dims), chunks=-1)
    if lazy:
        return image.get_image_dask_data(dims)
    return image.get_image_data(dims)


def image_metadata(image: Any, dims: str | None = None) -> dict[str, Any]:
    """Dims, shape, channel names and physical pixel sizes of a bioio image, JSON-able.

    ``dims``: the file's own axes when known, so the shape is the written one rather than
    bioio's five-dimensional view.
    """
    sizes = image.physical_pixel_sizes
    order = dims if dims and set(dims) <= set(image.dims.order) else image.dims.order
    meta: dict[str, Any] = {
        "dims": order,
        "shape": [int(getattr(image.dims, d)) for d in order],
        "dtype": str(image.dtype),
        "channel_names": [str(c) for c in (image.channel_names or [])],
    }
    known = {k: v for k, v in zip("ZYX", (sizes.Z, sizes.Y, sizes.X), strict=True) if v}
    if known:
        meta["physical_pixel_sizes"] = {k: float(v) for k, v in known.items()}
    return meta


__all__ = ["AnyImage", "bioimage", "image_metadata", "is_array", "location", "read_image"]


class AnyImage(Format):
    """Read-only: any image file a bioio plugin reads (.czi, .nd2, .lif...), as (T, C, Z, Y, X).

    Install the matching bioio plugin (e.g. ``bioio-czi``) for the file type.
    """

    name = "image"

    def __init__(self) -> None:
        super().__init__()

    def accepts(self, value: Any) -> bool:
        return False

    def check(self, value: Any, path: str) -> None:
        from databacked.errors import FormatError

        raise FormatError(
            f"{path!r} can be read through bioio but not written; "
            "write images as .ome.tiff or .ome.zarr."
        )

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        image = bioimage(self, store, path)
        return image.dask_data if lazy else image.data

    def read_metadata(self, store: Any, path: str) -> dict[str, Any]:
        return image_metadata(bioimage(self, store, path))
