"""TIFF and OME-TIFF: written by tifffile, read back through bioio.

The OME-XML is produced by tifffile from a metadata dict, never written by hand. Outputs are
byte-deterministic: no DateTime tag, and the OME UUID is derived from the content -- the
pixels (hashed as they stream to tifffile) and the metadata -- so writing the same image twice
gives the same file, and two different images never share a UUID. tifffile writes the OME-XML
with a placeholder UUID of the same length, which is then overwritten in place.

TIFF files are the one local output still hashed by reading back: tifffile seeks back to patch
offsets, so the bytes do not stream out in order. The finished file is hashed once from the
page cache (memory-mapped, all cores); ``make bench`` reports that cost (``formats`` section).
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

from databacked.errors import FormatError
from databacked.formats.base import Format
from databacked.formats.images import bioimage, check_image, dims_for, is_array, read_image

_UUID_NAMESPACE = uuid.UUID("6f1d7c1e-3b0a-4f43-9a57-8b1c2e6a5d10")


def _sizes(physical_pixel_sizes: Any) -> dict[str, float]:
    """``(z, y, x)`` or ``{"Z": .., "Y": .., "X": ..}`` -> OME PhysicalSize attributes."""
    if physical_pixel_sizes is None:
        return {}
    if isinstance(physical_pixel_sizes, dict):
        items = {str(k).upper(): v for k, v in physical_pixel_sizes.items()}
    else:
        z, y, x = physical_pixel_sizes
        items = {"Z": z, "Y": y, "X": x}
    return {f"PhysicalSize{k}": float(v) for k, v in items.items() if v is not None}


def _pages(array: Any) -> Any:
    """Yield the YX planes one by one: views of a numpy array, computed planes of a dask one.

    Pages also spare the whole-array copy tifffile makes of one big array written into an
    in-memory file (ten times faster on a 2 x 2048 x 2048 stack, byte-identical output).
    """
    import numpy as np

    lead = array.shape[:-2]
    compute = not isinstance(array, np.ndarray)
    for index in itertools.product(*(range(n) for n in lead)):
        plane = array[index]
        yield plane.compute() if compute else plane


class _PixelHash:
    """blake3 of the pixels in the order tifffile receives them (whole array or planes)."""

    def __init__(self) -> None:
        import blake3

        self._h = blake3.blake3(max_threads=blake3.blake3.AUTO)

    def update(self, array: Any) -> Any:
        import numpy as np

        self._h.update(memoryview(np.ascontiguousarray(array)).cast("B"))
        return array

    def pages(self, pages: Any) -> Any:
        for plane in pages:
            yield self.update(plane)

    def hexdigest(self) -> str:
        return str(self._h.hexdigest())


def _stamp_uuid(file: Any, placeholder: str, final: str) -> None:
    """Overwrite the placeholder UUID in the OME-XML of the finished file (same length)."""
    import tifffile

    file.seek(0)
    with tifffile.TiffFile(file) as tif:
        tag = tif.pages.first.tags["ImageDescription"]
        offset, text = tag.valueoffset, tag.value
    at = text.find(placeholder)
    if at < 0 or len(final) != len(placeholder):
        raise ValueError("tifffile wrote no OME UUID where databacked expected one")
    file.seek(offset + len(text[:at].encode()))
    file.write(final.encode())
    file.seek(0, 2)


def _data(array: Any, file: Any) -> Any:
    """What tifffile gets: a numpy array whole when the target is a real file (one write
    call per page, at page-cache speed), else pages one by one (dask, in-memory spools)."""
    import numpy as np

    if isinstance(array, np.ndarray) and hasattr(file, "fileno") and array.flags.c_contiguous:
        return array
    return _pages(array)


def _guard(store: Any, path: str, tif: Any) -> None:
    """Refuse, from the header alone, a first series too big to be real or to fit in memory
    (a hostile header must not make numpy allocate its declared size)."""
    from databacked.formats.limits import check_declared

    series = tif.series[0]
    plain = series.keyframe.compression == 1  # uncompressed: pixels cannot outgrow the file
    check_declared(
        "TIFF image",
        store.uri(path),
        series.shape,
        series.dtype.itemsize,
        stored_bytes=tif.filehandle.size if plain else None,
    )


def _file_axes(fmt: Format, store: Any, path: str, *, guard: bool = False) -> str | None:
    """The axes tifffile wrote into the file (from the header only), None if unusual;
    with ``guard``, the declared size is checked too (before a whole-image read)."""
    import tifffile

    from databacked.formats.base import corrupt

    try:
        with store.open(path) as file, tifffile.TiffFile(file) as tif:
            if guard:
                _guard(store, path, tif)
            axes = tif.series[0].axes.upper()
    except (tifffile.TiffFileError, ValueError, IndexError) as exc:
        raise corrupt(fmt, store, path, exc) from exc
    return axes if set(axes) <= set("TCZYXS") else None


def _read_by_axes(fmt: Format, store: Any, path: str, dims: str | None) -> Any:
    """Pixels straight from tifffile when the file's axes already are the wanted dims.

    bioio adds tens of milliseconds per file (OME-XML model, xarray) that a pipeline reading
    thousands of small cell crops pays every time; the pixels are the same bytes. Any other
    layout (missing or reordered axes, pyramids) returns None and goes through bioio.
    """
    import tifffile

    from databacked.formats.base import corrupt

    try:
        with store.open(path) as file, tifffile.TiffFile(file) as tif:
            _guard(store, path, tif)
            series = tif.series[0]
            axes = series.axes.upper()
            if dims is not None and dims != axes:
                if sorted(dims) != sorted(axes):
                    return None
                return series.asarray().transpose([axes.index(d) for d in dims])
            return series.asarray() if set(axes) <= set("TCZYXS") else None
    except (tifffile.TiffFileError, ValueError, IndexError) as exc:
        raise corrupt(fmt, store, path, exc) from exc


class Tiff(Format):
    """A plain TIFF written by tifffile (no OME metadata)."""

    name = "tiff"
    extensions = (".tif", ".tiff")
    needs_seek = True

    def __init__(self, compression: str | None = None) -> None:
        super().__init__(compression=compression)

    def accepts(self, value: Any) -> bool:
        return is_array(value) and value.ndim >= 2

    def _write(self, value: Any, file: Any) -> dict[str, Any]:
        import tifffile

        kwargs: dict[str, Any] = {
            "compression": self.options["compression"],
            "photometric": "minisblack",
        }
        shape = tuple(value.shape)
        tifffile.imwrite(file, _data(value, file), shape=shape, dtype=value.dtype, **kwargs)
        return {"shape": [int(n) for n in value.shape], "dtype": str(value.dtype)}

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        if lazy:
            return read_image(self, store, path, dims=None, lazy=True)
        import tifffile

        from databacked.formats.base import corrupt

        try:
            with store.open(path) as file, tifffile.TiffFile(file) as tif:
                _guard(store, path, tif)
                return tif.asarray()
        except (tifffile.TiffFileError, ValueError, IndexError) as exc:
            raise corrupt(self, store, path, exc) from exc


class OmeTiff(Format):
    """OME-TIFF with dims, channel names and physical pixel sizes (micrometres, (z, y, x))."""

    name = "ome-tiff"
    extensions = (".ome.tiff", ".ome.tif")
    needs_seek = True

    def __init__(
        self,
        dims: str | None = None,
        channel_names: list[str] | tuple[str, ...] | None = None,
        physical_pixel_sizes: Any = None,
        compression: str | None = None,
    ) -> None:
        dims = str(dims).upper() if dims is not None else None
        distinct = dims is None or (len(set(dims)) == len(dims) and set(dims) <= set("TCZYXS"))
        if not distinct or (dims is not None and not dims.endswith(("YX", "YXS"))):
            raise FormatError(
                f"OmeTiff dims {dims!r} are not valid: use distinct letters of T, C, Z "
                "ending in 'YX' (or 'YXS' for RGB), such as 'CZYX' or 'TCZYX'."
            )
        super().__init__(
            dims=dims,
            channel_names=list(channel_names) if channel_names is not None else None,
            physical_pixel_sizes=physical_pixel_sizes,
            compression=compression,
        )

    def accepts(self, value: Any) -> bool:
        return is_array(value)

    def check(self, value: Any, path: str) -> None:
        super().check(value, path)
        check_image("OmeTiff", value, self.options["dims"], self.options["channel_names"], path)

    def _metadata(self, value: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "dims": dims_for(value, self.options["dims"]),
            "shape": [int(n) for n in value.shape],
            "dtype": str(value.dtype),
        }
        if self.options["channel_names"] is not None:
            meta["channel_names"] = list(self.options["channel_names"])
        sizes = self.options["physical_pixel_sizes"]
        if sizes is not None:
            meta["physical_pixel_sizes"] = {k[-1]: v for k, v in _sizes(sizes).items()}
        return meta

    def _write(self, value: Any, file: Any) -> dict[str, Any]:
        import numpy as np
        import tifffile

        meta = self._metadata(value)
        ome: dict[str, Any] = {
            "axes": meta["dims"],
            **_sizes(self.options["physical_pixel_sizes"]),
        }
        if "channel_names" in meta:
            ome["Channel"] = {"Name": meta["channel_names"]}
        described = json.dumps(meta, sort_keys=True)
        placeholder = str(uuid.uuid5(_UUID_NAMESPACE, "placeholder\0" + described))
        ome["UUID"] = placeholder
        pixels = _PixelHash()
        rgb = meta["dims"].endswith("S")
        kwargs: dict[str, Any] = {
            "metadata": ome,
            "photometric": "rgb" if rgb else "minisblack",
            "compression": self.options["compression"],
        }
        with tifffile.TiffWriter(file, ome=True) as writer:
            if rgb:
                writer.write(pixels.update(np.asarray(value)), **kwargs)
            else:
                # pages come one by one from an iterator (a dask array is never all in memory)
                data = _data(value, file)
                data = pixels.update(data) if isinstance(data, np.ndarray) else pixels.pages(data)
                writer.write(data, shape=tuple(value.shape), dtype=value.dtype, **kwargs)
        content = str(uuid.uuid5(_UUID_NAMESPACE, f"{described}\0{pixels.hexdigest()}"))
        _stamp_uuid(file, placeholder, content)
        return meta

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        if not lazy:
            pixels = _read_by_axes(self, store, path, self.options["dims"])
            if pixels is not None:
                return pixels
        axes = _file_axes(self, store, path, guard=not lazy)
        return read_image(self, store, path, dims=self.options["dims"] or axes, lazy=lazy)

    def read_metadata(self, store: Any, path: str) -> dict[str, Any]:
        from databacked.formats.images import image_metadata

        return image_metadata(bioimage(self, store, path), _file_axes(self, store, path))


__all__ = ["OmeTiff", "Tiff"]
