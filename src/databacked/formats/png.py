"""PNG for 2-D grayscale or RGB(A) images, through imageio.

uint8 is written as is; any other dtype is contrast-stretched to 8 bits between two
percentiles (default 0.1 and 99.9), the usual way to make a microscopy image viewable.
"""

from __future__ import annotations

import io
from typing import Any

from databacked.errors import FormatError
from databacked.formats.base import Format, corrupt
from databacked.formats.images import is_array


def stretch(array: Any, percentiles: tuple[float, float]) -> Any:
    """Scale ``array`` to uint8 so the low/high percentiles map to 0 and 255."""
    import numpy as np

    data = np.asarray(array, dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return np.zeros(data.shape, dtype=np.uint8)
    low, high = np.percentile(finite, percentiles)
    if high <= low:
        # a flat image: everything at the low end, rather than dividing by zero
        return np.zeros(data.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(data, nan=low) - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


class Png(Format):
    """A viewable 8-bit PNG: (Y, X), (Y, X, 3) or (Y, X, 4)."""

    name = "png"
    extensions = (".png",)

    def __init__(self, percentiles: tuple[float, float] | list[float] = (0.1, 99.9)) -> None:
        low, high = (float(p) for p in percentiles)
        if not 0 <= low < high <= 100:
            raise FormatError(
                f"Png percentiles {tuple(percentiles)} are not valid: give (low, high) with "
                "0 <= low < high <= 100, such as (0.1, 99.9)."
            )
        super().__init__(percentiles=[low, high])

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

        data = np.asarray(value)
        if data.dtype != np.uint8:
            data = stretch(data, tuple(self.options["percentiles"]))
        file.write(iio.imwrite("<bytes>", data, extension=".png"))
        return {"shape": list(data.shape), "dtype": "uint8", "source_dtype": str(value.dtype)}

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        import imageio.v3 as iio
        from PIL import Image

        data = store.read_bytes(path)
        try:
            # Pillow refuses headers declaring more than 2 x MAX_IMAGE_PIXELS before decoding
            return iio.imread(io.BytesIO(data), extension=".png")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise corrupt(self, store, path, exc) from exc


__all__ = ["Png", "stretch"]
