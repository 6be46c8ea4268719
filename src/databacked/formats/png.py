"""PNG for 2-D grayscale or RGB(A) images, through imageio.

Values stay values: uint8 images (grey or RGB(A)) and 16-bit greyscale images are stored as
they are, and so are integer images whose values fit those types. Only what PNG cannot hold
otherwise (floats, negative or larger integers, 16-bit colour) is contrast-stretched to 8
bits between two percentiles (default 0.1 and 99.9), the usual way to make a microscopy
image viewable; ``Png(stretch=True)`` asks for that stretch always, ``stretch=False``
refuses any value that would be changed. A stretched file says so in its metadata, so a
step that reads it back is warned that it gets viewable bytes, not the values.
"""

from __future__ import annotations

import io
from typing import Any

from databacked.errors import FormatError
from databacked.formats.base import Format, corrupt
from databacked.formats.images import is_array

STRETCHED = "values were contrast-stretched to 8 bits"


def stretch(array: Any, percentiles: tuple[float, float]) -> Any:
    """Scale ``array`` to uint8 so the low/high percentiles map to 0 and 255."""
    return _stretch(array, percentiles)[0]


def _stretch(array: Any, percentiles: tuple[float, float]) -> tuple[Any, list[float]]:
    """The stretched uint8 image and the (low, high) source values mapped to 0 and 255."""
    import numpy as np

    data = np.asarray(array, dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return np.zeros(data.shape, dtype=np.uint8), [0.0, 0.0]
    low, high = (float(v) for v in np.percentile(finite, percentiles))
    if high <= low:
        # a flat image: everything at the low end, rather than dividing by zero
        return np.zeros(data.shape, dtype=np.uint8), [low, high]
    scaled = (np.nan_to_num(data, nan=low) - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8), [low, high]


def exact(data: Any) -> Any | None:
    """``data`` as uint8/uint16 without changing a value, or None when PNG cannot hold it."""
    import numpy as np

    if data.dtype == np.uint8:
        return data
    if data.dtype == np.bool_:
        return data.astype(np.uint8)
    if not np.issubdtype(data.dtype, np.integer):
        return None
    if data.size == 0:
        return data.astype(np.uint8)
    low, high = int(data.min()), int(data.max())
    if low < 0:
        return None
    if high <= 255 and data.dtype.itemsize == 1:
        return data.astype(np.uint8)
    # Pillow writes 16 bits for greyscale only; colour needs 8-bit values.
    grey = data.ndim == 2
    if grey and (data.dtype == np.uint16 or high <= 65535):
        return data.astype(np.uint16)
    if high <= 255:
        return data.astype(np.uint8)
    return None


class Png(Format):
    """A PNG: (Y, X), (Y, X, 3) or (Y, X, 4); integers kept, the rest stretched to 8 bits."""

    name = "png"
    extensions = (".png",)

    def __init__(
        self,
        percentiles: tuple[float, float] | list[float] = (0.1, 99.9),
        stretch: bool | None = None,
    ) -> None:
        low, high = (float(p) for p in percentiles)
        if not 0 <= low < high <= 100:
            raise FormatError(
                f"Png percentiles {tuple(percentiles)} are not valid: give (low, high) with "
                "0 <= low < high <= 100, such as (0.1, 99.9)."
            )
        options: dict[str, Any] = {"percentiles": [low, high]}
        if stretch is not None:  # the default leaves the spec (and old records) unchanged
            options["stretch"] = bool(stretch)
        super().__init__(**options)

    @property
    def lossy(self) -> str:  # type: ignore[override]
        """Certain loss only when stretching was asked for; otherwise see ``lost``."""
        return STRETCHED if self.options.get("stretch") else ""

    def lost(self, metadata: dict[str, Any]) -> str:
        if metadata.get("stretched"):
            return f"{STRETCHED} (from {metadata.get('source_dtype', 'another type')})"
        return ""

    def accepts(self, value: Any) -> bool:
        if not is_array(value):
            return False
        return value.ndim == 2 or (value.ndim == 3 and value.shape[-1] in (3, 4))

    def check(self, value: Any, path: str) -> None:
        if is_array(value) and not self.accepts(value):
            raise FormatError(
                f"Png for {path!r} takes a 2-D (Y, X) or RGB(A) (Y, X, 3|4) array, not shape "
                f"{tuple(value.shape)}; select a plane first or use OmeTiff for stacks."
            )
        super().check(value, path)

    def _write(self, value: Any, file: Any) -> dict[str, Any]:
        import imageio.v3 as iio
        import numpy as np

        source = np.asarray(value)
        asked = self.options.get("stretch")
        data = None if asked else exact(source)
        meta: dict[str, Any] = {"source_dtype": str(source.dtype), "stretched": data is None}
        if data is None:
            if asked is False:
                raise FormatError(
                    f"Png(stretch=False) cannot store a {source.dtype} image of shape "
                    f"{tuple(source.shape)} without changing its values; write it as "
                    ".ome.tiff, or allow the 8-bit stretch with Png(stretch=True)."
                )
            data, meta["stretch_range"] = _stretch(source, tuple(self.options["percentiles"]))
        file.write(iio.imwrite("<bytes>", data, extension=".png"))
        return {"shape": list(data.shape), "dtype": str(data.dtype), **meta}

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        import imageio.v3 as iio
        from PIL import Image

        data = store.read_bytes(path)
        try:
            # Pillow refuses headers declaring more than 2 x MAX_IMAGE_PIXELS before decoding
            return iio.imread(io.BytesIO(data), extension=".png")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise corrupt(self, store, path, exc) from exc


__all__ = ["Png", "exact", "stretch"]
