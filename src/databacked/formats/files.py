"""Files as they are: what command steps read and write (no value in between).

A command (CellProfiler, a shell tool) reads files and writes files, so its inputs must be
local paths and its outputs must reach the store byte for byte. ``LocalFile`` reads an
artifact as a local path (the file itself in a local store, a downloaded copy otherwise);
``FileCopy`` writes a produced file's bytes unchanged and records the format its
extension names, so a Python step downstream reads a ``.csv`` as a DataFrame as usual.
Neither is ever chosen by extension.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from databacked.formats.base import ArtifactRecord, Format

_BLOCK = 8 * 1024 * 1024


class LocalFile(Format):
    """Read-only: an artifact as a local ``Path`` (downloaded from object stores)."""

    name = "local-file"
    extensions = ()

    def accepts(self, value: Any) -> bool:
        return False  # never writes; FileCopy does

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        local = store.local_path(path)
        if local is not None:
            return local
        folder = Path(tempfile.mkdtemp(prefix="databacked-in-"))
        target = folder / Path(path).name
        with store.open(path) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, _BLOCK)
        return target


class FileCopy(Format):
    """Writes a local file (a ``str``/``os.PathLike``) to the store unchanged."""

    name = "file-copy"
    extensions = ()

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str | os.PathLike) and os.path.isfile(value)

    def _write(self, value: Any, file: Any) -> dict[str, Any]:
        with open(value, "rb") as src:
            shutil.copyfileobj(src, file, _BLOCK)
        return {}

    def record(self, result: Any, metadata: dict[str, Any]) -> ArtifactRecord:
        from databacked.formats.registry import format_for_path

        record = super().record(result, metadata)
        known = format_for_path(record.path)
        if known is None:
            return record
        return ArtifactRecord(
            path=record.path,
            hash=record.hash,
            size=record.size,
            format=known.name,
            stamp=record.stamp,
            metadata=record.metadata,
        )

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        return LocalFile().read(store, path)


__all__ = ["FileCopy", "LocalFile"]
