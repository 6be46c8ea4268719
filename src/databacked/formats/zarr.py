"""OME-Zarr (NGFF 0.5 on zarr v3) through ome-zarr, read back through bioio-ome-zarr.

A directory artifact: written into ``store.directory_writer`` (a staging folder renamed into
place locally, a prefix on object stores) and hashed as a Merkle tree of its files. Dask arrays
are written chunk by chunk by ome-zarr/dask, never materialised whole.
"""

from __future__ import annotations

from typing import Any

from databacked.errors import FormatError
from databacked.formats.base import Format
from databacked.formats.images import (
    bioimage,
    check_image,
    dims_for,
    image_metadata,
    is_array,
    read_image,
)

_COLORS = ("FFFFFF", "00FF00", "FF00FF", "00FFFF", "FF0000", "0000FF", "FFFF00")


def _channels(names: list[str], dtype: Any) -> list[dict[str, Any]]:
    """omero channel entries; the display window is the dtype's range (no pass over the data)."""
    import numpy as np

    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low, high = float(info.min), float(info.max)
    else:
        low, high = 0.0, 1.0
    window = {"start": low, "end": high, "min": low, "max": high}
    return [
        {"label": str(n), "active": True, "color": _COLORS[i % len(_COLORS)], "window": window}
        for i, n in enumerate(names)
    ]


def _open(fmt: Format, store: Any, path: str) -> tuple[str | None, Any]:
    """The axes named in the NGFF metadata (0.5 under "ome", 0.4 at the top) and the
    full-resolution zarr array; (None, None) for layouts we leave to bioio."""
    import zarr

    from databacked.formats.base import corrupt
    from databacked.formats.images import location

    store.info(path)
    url, options = location(store, path)
    try:
        group = zarr.open_group(url, mode="r", storage_options=options or None)
        attrs = dict(group.attrs)
        multiscales = attrs.get("ome", attrs).get("multiscales") or [{}]
        axes = "".join(str(a.get("name", "?")) for a in multiscales[0].get("axes", [])).upper()
        datasets = multiscales[0].get("datasets") or [{}]
        array = group.get(datasets[0].get("path", ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise corrupt(fmt, store, path, exc) from exc
    if not axes or not set(axes) <= set("TCZYX") or array is None:
        return None, None
    return axes, array


class OmeZarr(Format):
    """An OME-Zarr image: dims (ordered as in TCZYX), channel names, chunks, pyramid levels."""

    name = "ome-zarr"
    extensions = (".ome.zarr", ".zarr")
    directory = True

    def __init__(
        self,
        dims: str | None = None,
        channel_names: list[str] | tuple[str, ...] | None = None,
        chunks: tuple[int, ...] | list[int] | None = None,
        multiscale: bool | int = False,
        physical_pixel_sizes: Any = None,
    ) -> None:
        dims = str(dims).upper() if dims is not None else None
        order = "TCZYX"
        if dims is not None and (
            not dims.endswith("YX")
            or len(set(dims)) != len(dims)
            or not set(dims) <= set(order)
            or sorted(dims, key=order.index) != list(dims)
        ):
            raise FormatError(
                f"OmeZarr dims {dims!r} are not valid: OME-Zarr needs a subset of 'TCZYX' in "
                "that order ending in 'YX', such as 'CZYX' or 'ZYX'."
            )
        levels = 1 if multiscale is False else (4 if multiscale is True else int(multiscale))
        super().__init__(
            dims=dims,
            channel_names=list(channel_names) if channel_names is not None else None,
            chunks=list(chunks) if chunks is not None else None,
            multiscale=levels,
            physical_pixel_sizes=physical_pixel_sizes,
        )

    def accepts(self, value: Any) -> bool:
        return is_array(value)

    def check(self, value: Any, path: str) -> None:
        super().check(value, path)
        check_image("OmeZarr", value, self.options["dims"], self.options["channel_names"], path)
        chunks = self.options["chunks"]
        if chunks is not None and len(chunks) != value.ndim:
            raise FormatError(
                f"OmeZarr for {path!r} got chunks {tuple(chunks)} for a {value.ndim}-D array; "
                "give one chunk size per dimension."
            )

    def _write_dir(self, value: Any, target: Any) -> dict[str, Any]:
        import zarr
        from ome_zarr.writer import write_image

        from databacked.formats.tiff import _sizes

        dims = dims_for(value, self.options["dims"])
        meta: dict[str, Any] = {
            "dims": dims,
            "shape": [int(n) for n in value.shape],
            "dtype": str(value.dtype),
            "levels": self.options["multiscale"],
        }
        extra: dict[str, Any] = {}
        names = self.options["channel_names"]
        if names is not None:
            meta["channel_names"] = list(names)
            extra["omero"] = {"channels": _channels(names, value.dtype)}
        sizes = {k[-1]: v for k, v in _sizes(self.options["physical_pixel_sizes"]).items()}
        if sizes:
            meta["physical_pixel_sizes"] = sizes
        storage: dict[str, Any] = {}
        if self.options["chunks"] is not None:
            storage["chunks"] = tuple(self.options["chunks"])
        levels = self.options["multiscale"]
        group = zarr.open_group(target.store, mode="w", zarr_format=3)
        if levels <= 1 and type(value).__module__ == "numpy":
            _write_single_level(value, group, dims, sizes, storage.get("chunks"), **extra)
            return meta
        write_image(
            value,
            group,
            scale_factors=[2**i for i in range(1, levels)],
            axes=dims.lower(),
            storage_options=storage or None,
            scale={d.lower(): float(sizes.get(d, 1.0)) for d in dims},
            **extra,
        )
        return meta

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        # The pixels come straight from zarr when the file's axes are the wanted dims (bioio
        # costs tens of milliseconds per image for the same chunks); bioio reorders otherwise.
        axes, array = _open(self, store, path)
        if not lazy and array is not None:
            from databacked.formats.limits import check_declared

            check_declared("Zarr array", store.uri(path), array.shape, array.dtype.itemsize)
        dims = self.options["dims"] or axes
        if axes is not None and dims == axes:
            if lazy:
                import dask.array as da

                return da.from_zarr(array)
            return array[...]
        return read_image(self, store, path, dims=dims, lazy=lazy)

    def read_metadata(self, store: Any, path: str) -> dict[str, Any]:
        return image_metadata(bioimage(self, store, path), _open(self, store, path)[0])


__all__ = ["OmeZarr"]


def _write_single_level(
    value: Any,
    group: Any,
    dims: str,
    sizes: dict[str, float],
    chunks: tuple[int, ...] | None,
    **extra: Any,
) -> None:
    """One resolution level of a numpy array: zarr writes the pixels directly, ome-zarr
    writes the NGFF 0.5 metadata. ``write_image`` would route numpy through dask, which
    costs more than the write itself; multiscale and dask inputs still go through it."""
    import dask.array as da
    from ome_zarr.writer import write_multiscales_metadata

    axes = dims.lower()
    array = group.create_array(
        "s0",
        shape=value.shape,
        dtype=value.dtype,
        chunks=tuple(chunks or da.from_array(value).chunksize),  # write_image's choice
        dimension_names=list(axes),
    )
    array[...] = value
    scale = [float(sizes.get(d, 1.0)) for d in dims]
    transforms = [
        {"type": "scale", "scale": scale},
        {"type": "translation", "translation": [0.0] * len(dims)},
    ]
    write_multiscales_metadata(
        group,
        datasets=[{"path": "s0", "coordinateTransformations": transforms}],
        axes=axes,
        name="image",
    )
    if "omero" in extra:
        ome = dict(group.attrs["ome"])
        ome["omero"] = {**extra["omero"], "version": ome.get("version", "0.5")}
        group.attrs.update({"ome": ome})
