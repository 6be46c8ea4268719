"""Arrays read back from their files, lazily: what a miss and a hit both hand downstream.

A task written through ``LocalResult``/``S3Result`` returns a dask array named
``databacked-<content hash>-<uri digest>`` whose one chunk is the file, read (after the hash
check) only when computed. Downstream keys come from the name, so keying reads no bytes.
"""

from __future__ import annotations

import threading
from typing import Any

from databacked.hashing import hash_bytes
from databacked.integrations.prefect.pointers import Pointer

PREFIX = "databacked-"
_POINTERS: dict[str, Pointer] = {}
_LOCK = threading.Lock()


class _FileArray:
    """The array-like dask reads: shape and dtype from the pointer, pixels on first access."""

    def __init__(self, pointer: Pointer) -> None:
        import numpy as np

        self.pointer = pointer
        self.shape = tuple(pointer.meta["shape"])
        self.dtype = np.dtype(pointer.meta["dtype"])
        self.ndim = len(self.shape)

    def __getitem__(self, index: Any) -> Any:
        import numpy as np

        return np.asarray(self.pointer.read())[index]

    def __getstate__(self) -> dict[str, Any]:
        return {"pointer": self.pointer}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["pointer"])  # type: ignore[misc]


def can_be_lazy(pointer: Pointer) -> bool:
    return "shape" in pointer.meta and "dtype" in pointer.meta


def lazy_value(pointer: Pointer) -> Any:
    """A dask array over the file for arrays; other values are read now (after the check)."""
    if not can_be_lazy(pointer):
        return pointer.read()
    import dask.array as da
    import numpy as np

    name = f"{PREFIX}{pointer.hash}-{hash_bytes(pointer.uri.encode())[:12]}"
    with _LOCK:
        _POINTERS[name] = pointer
    source = _FileArray(pointer)
    meta = np.empty((0,) * source.ndim, dtype=source.dtype)
    return da.from_array(source, chunks=source.shape, name=name, meta=meta, asarray=False)


def pointer_of(value: Any) -> Pointer | None:
    """The pointer behind a lazy array made here (or anywhere: it travels in the graph)."""
    name = getattr(value, "name", None)
    if not isinstance(name, str) or not name.startswith(PREFIX) or not hasattr(value, "dask"):
        return None
    with _LOCK:
        found = _POINTERS.get(name)
    if found is not None:
        return found
    for layer_value in dict(value.dask).values():
        if isinstance(layer_value, _FileArray):
            return layer_value.pointer
    return None


__all__ = ["PREFIX", "can_be_lazy", "lazy_value", "pointer_of"]
