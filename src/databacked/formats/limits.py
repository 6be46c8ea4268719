"""How big an image a file may declare before its pixels are allocated.

A hostile or corrupt header (a TIFF, Zarr, ``.npy`` or PNG saying 100,000 x 100,000 pixels)
must fail with one sentence before numpy allocates gigabytes: reading it whole would be
killed by the kernel instead of failing cleanly. Two rules, checked from the header alone:
a file without compression cannot hold more pixel bytes than it has bytes, and no image is
read whole into memory when it declares more than the machine's memory (or
``DATABACKED_MAX_IMAGE_BYTES``); ``lazy=True`` reads such images chunk by chunk instead.
"""

from __future__ import annotations

import math
import os
from typing import Any

from databacked.errors import CorruptFileError, FormatError


def max_image_bytes() -> int:
    """The most bytes one image may declare to be read whole: memory, or the variable."""
    text = os.environ.get("DATABACKED_MAX_IMAGE_BYTES")
    if text:
        try:
            return int(text)
        except ValueError as exc:
            raise FormatError(
                f"DATABACKED_MAX_IMAGE_BYTES={text!r} is not a whole number of bytes; "
                "set it to an integer such as 17179869184."
            ) from exc
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 64 * 1024**3


def check_declared(
    what: str,
    uri: str,
    shape: Any,
    itemsize: int,
    *,
    stored_bytes: int | None = None,
) -> None:
    """Refuse a header whose shape cannot be real (``stored_bytes``: the size of the
    uncompressed pixel data available in the file) or cannot fit in memory."""
    try:
        dims = [int(n) for n in shape]
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(f"{uri} declares an unreadable shape {shape!r}.") from exc
    if any(n < 0 for n in dims):
        raise CorruptFileError(f"{uri} declares a negative size in its shape {tuple(dims)}.")
    declared = math.prod(dims) * int(itemsize)
    what = f"{'an' if what[:1] in 'aeiou' else 'a'} {what}"
    if stored_bytes is not None and declared > stored_bytes:
        raise CorruptFileError(
            f"{uri} declares {what} of shape {tuple(dims)} ({declared} bytes) but holds only "
            f"{stored_bytes} bytes of pixels: the file is truncated or its header is corrupt; "
            "re-create it."
        )
    limit = max_image_bytes()
    if declared > limit:
        raise FormatError(
            f"{uri} declares {what} of shape {tuple(dims)} ({declared} bytes), more than "
            f"the {limit} bytes allowed in memory; load it with lazy=True, or raise "
            "DATABACKED_MAX_IMAGE_BYTES if the machine can hold it."
        )


def check_npy(uri: str, data: bytes) -> None:
    """A ``.npy`` header declaring more items than the bytes hold (or than memory allows) is
    refused before numpy allocates them: ``np.load`` from memory allocates the declared size
    first."""
    import io

    import numpy as np

    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    except ValueError as exc:
        raise CorruptFileError(f"{uri} is not a readable .npy array ({exc}).") from exc
    if not dtype.hasobject:
        left = len(data) - stream.tell()
        check_declared("array", uri, shape, dtype.itemsize, stored_bytes=left)


__all__ = ["check_declared", "check_npy", "max_image_bytes"]
