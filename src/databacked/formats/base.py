"""What every format is: a named, option-carrying writer/reader of one kind of file.

A format turns a Python value into the bytes of a native file in a store and back. It writes
only through ``store.writer`` / ``store.directory_writer`` (atomic, hashed while writing), so a
format never builds a filesystem, reads credentials or leaves half-written files behind.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from databacked.errors import FormatError

if TYPE_CHECKING:
    from databacked.store import Store, WriteResult


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """What one write produced; travels from a worker to the driver, so it is JSON-able."""

    path: str
    hash: str
    size: int
    format: str
    stamp: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies recursively, a cost on every call's journal
        return {
            "path": self.path,
            "hash": self.hash,
            "size": self.size,
            "format": self.format,
            "stamp": self.stamp,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRecord:
        return cls(
            path=str(data["path"]),
            hash=str(data["hash"]),
            size=int(data["size"]),
            format=str(data["format"]),
            stamp=str(data.get("stamp", "")),
            metadata=dict(data.get("metadata") or {}),
        )


class Format:
    """Base class: subclasses set ``name``/``extensions`` and implement ``_write``/``read``.

    Options are the keyword arguments of ``__init__``, kept in ``self.options``; they make up
    ``spec()``, so two formats with the same options compare equal.
    """

    name: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()
    directory: ClassVar[bool] = False
    # Libraries that seek back while writing (tifffile patches IFD offsets) get a spooled
    # temporary file, copied through the store's hashing writer once complete.
    needs_seek: ClassVar[bool] = False
    # What a format loses on every write ("" for a lossless one), e.g. "JPEG compression
    # artefacts": a step that reads such an artifact back is warned at plan time.
    lossy: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = options

    # --- identity ---------------------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        """``{"name": ..., **options}``: JSON-able and enough to rebuild the format."""
        return {"name": self.name, **_jsonable(self.options)}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Format:
        options = {k: v for k, v in spec.items() if k != "name"}
        try:
            return cls(**options)
        except TypeError as exc:
            raise FormatError(
                f"Format spec {spec!r} has options {cls.__name__} does not take ({exc}); "
                "check the format's documented arguments."
            ) from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Format) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash(json.dumps(self.spec(), sort_keys=True))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v is not None)
        return f"{type(self).__name__}({args})"

    # --- the work ---------------------------------------------------------------------------

    def accepts(self, value: Any) -> bool:
        """Can this format write ``value``?"""
        return True

    def check(self, value: Any, path: str) -> None:
        """Raise a FormatError sentence if ``value`` cannot be written (before any byte)."""
        if not self.accepts(value):
            raise FormatError(
                f"Format {self.name!r} cannot write a {type(value).__name__} to {path!r}; "
                "pass a value of the kind it writes or choose another format with format=."
            )

    def write(self, value: Any, store: Store, path: str) -> ArtifactRecord:
        """Write ``value`` atomically to ``path`` in ``store``; returns its record."""
        from databacked.errors import DatabackedError

        self.check(value, path)
        try:
            if self.directory:
                with store.directory_writer(path) as target:
                    metadata = self._write_dir(value, target)
            elif self.needs_seek and store.is_local:
                # one write into the target folder, hashed once complete (from page cache)
                with store.seekable_writer(path) as target:
                    metadata = self._write(value, target.file)
            elif self.needs_seek:
                with _spool(value) as spool:
                    metadata = self._write(value, spool)
                    with store.writer(path) as target:
                        _copy(spool, target)
            else:
                with store.writer(path) as target:
                    metadata = self._write(value, target)
        except DatabackedError:
            raise
        except (TypeError, ValueError) as exc:
            raise FormatError(
                f"Format {self.name!r} could not write a {type(value).__name__} to "
                f"{store.uri(path)} ({type(exc).__name__}: {exc}); nothing was written."
            ) from exc
        return self.record(target.result, metadata)

    def record(self, result: WriteResult | None, metadata: dict[str, Any]) -> ArtifactRecord:
        assert result is not None
        return ArtifactRecord(
            path=result.path,
            hash=result.hash,
            size=result.size,
            format=self.name,
            stamp=result.stamp,
            metadata=_jsonable(metadata),
        )

    def _write(self, value: Any, file: Any) -> dict[str, Any]:
        """Write ``value`` into the binary file object; return JSON-able metadata."""
        raise NotImplementedError

    def _write_dir(self, value: Any, target: Any) -> dict[str, Any]:
        """Write ``value`` into a DirectoryWriter (directory formats only)."""
        raise NotImplementedError

    def read(self, store: Store, path: str, *, lazy: bool = False) -> Any:
        raise NotImplementedError

    def lost(self, metadata: dict[str, Any]) -> str:
        """What the write that produced ``metadata`` lost ("" when its values read back
        as they were written); formats that lose only some values override it."""
        return self.lossy

    def read_metadata(self, store: Store, path: str) -> dict[str, Any]:
        """Metadata of an existing file (cheap where possible); {} when unknown."""
        return {}


_BLOCK = 8 * 1024 * 1024
_SPOOL_MEMORY = 256 * 1024 * 1024


def _spool(value: Any) -> Any:
    """A seekable scratch file: in memory up to 256 MiB of data, else in the temp folder."""
    if int(getattr(value, "nbytes", 0) or 0) <= _SPOOL_MEMORY:
        return io.BytesIO()
    # tifffile wants a named file; deleted on close, so nothing is left behind
    return tempfile.NamedTemporaryFile(prefix=".databacked-tmp-")


def _copy(spool: Any, target: Any) -> None:
    """Spooled bytes into the store writer; from memory as views, never copied again."""
    if isinstance(spool, io.BytesIO):
        view = spool.getbuffer()
        try:
            for start in range(0, len(view), _BLOCK):
                target.write(view[start : start + _BLOCK])
        finally:
            view.release()
    else:
        spool.seek(0)
        shutil.copyfileobj(spool, target, _BLOCK)


def corrupt(fmt: Format, store: Store, path: str, exc: BaseException) -> FormatError:
    """The error for bytes a library could not parse (missing files stay ArtifactNotFound)."""
    from databacked.errors import CorruptFileError

    return CorruptFileError(
        f"{store.uri(path)} is not a readable {fmt.name} file ({type(exc).__name__}: {exc}); "
        "re-create it or load it with the right format=."
    )


def _jsonable(value: Any) -> Any:
    """Plain JSON types: tuples become lists, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)


__all__ = ["ArtifactRecord", "Format", "corrupt"]
