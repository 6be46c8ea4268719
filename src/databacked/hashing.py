"""Content hashing of files and canonical hashing of parameter values (blake3).

File hashes are plain blake3 of the bytes, so ``b3sum`` agrees with them. Value hashes are
blake3 over a type-tagged byte encoding that starts with ``SCHEME``: ``1``, ``"1"`` and
``1.0`` differ, dict order does not matter, and nothing depends on ``PYTHONHASHSEED`` or on
which optional packages are installed. Changing the encoding changes every cache key, so
golden tests pin literal digests; bump ``SCHEME`` when the encoding must change.

Example::

    >>> hash_value({"sigma": 1.5, "channels": ["DAPI", "GFP"]})  # doctest: +SKIP
    '5c0e...'
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import functools
import math
import os
import sys
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath
from typing import Any, Protocol

import blake3

from databacked.errors import ArtifactNotFound, StoreError, UnhashableValueError

SCHEME = "databacked/1"
RACY_NS = 2_000_000_000
"""Files modified less than this long ago are hashed but not trusted by their stat: a write
within the clock's granularity could leave the stamp as it was ("racy" stat, as git says)."""

_BLOCK = 8 * 1024 * 1024
# Below this size a thread pool costs more than it saves; read the file in one go.
_SMALL_FILE = 1024 * 1024


class _Sink(Protocol):
    def update(self, data: bytes | memoryview, /) -> object: ...


def hash_bytes(data: bytes | memoryview) -> str:
    """Plain blake3 hex digest of ``data`` (what ``b3sum`` prints)."""
    return blake3.blake3(data).hexdigest()


class StreamHasher:
    """Incremental blake3 for bytes that stream past once (writes, downloads).

    Example::

        h = StreamHasher()
        h.update(b"abc")
        h.hexdigest()   # == hash_bytes(b"abc")
    """

    __slots__ = ("_h", "size")

    def __init__(self) -> None:
        self._h = blake3.blake3()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)
        self.size += len(data) if not isinstance(data, memoryview) else data.nbytes

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def combine(*parts: str | bytes) -> str:
    """Domain-separated hash of a sequence of parts (cache keys, directory hashes).

    Each part is length-prefixed, so ``combine("ab", "c") != combine("a", "bc")``.
    """
    h = blake3.blake3()
    h.update(f"{SCHEME}\0combine\0".encode())
    h.update(len(parts).to_bytes(8, "little"))
    for part in parts:
        data = part.encode() if isinstance(part, str) else bytes(part)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Files


def _is_remote(path_or_url: str | os.PathLike[str]) -> bool:
    text = os.fspath(path_or_url)
    return "://" in text and not text.startswith("file://")


def _local_file_hash(path: str) -> str:
    size = os.path.getsize(path)
    if size < _SMALL_FILE:
        with open(path, "rb") as f:
            return blake3.blake3(f.read()).hexdigest()
    # Memory-mapped and hashed on all cores: a 1 GiB image hashes at memory speed.
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update_mmap(path)
    return h.hexdigest()


def _directory_hash(entries: Iterable[tuple[str, str]]) -> str:
    return combine("dir", *sorted(f"{rel}\0{digest}" for rel, digest in entries))


def _local_hash(path: str) -> str:
    if os.path.isdir(path):
        entries = []
        for root, _dirs, files in os.walk(path):
            for name in files:
                full = os.path.join(root, name)
                rel = os.path.relpath(full, path).replace(os.sep, "/")
                entries.append((rel, _local_file_hash(full)))
        return _directory_hash(entries)
    return _local_file_hash(path)


def _stream_hash(fs: Any, path: str) -> str:
    h = blake3.blake3()
    with fs.open(path, "rb", block_size=_BLOCK) as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def hash_fs_path(fs: Any, path: str) -> str:
    """Hash a file or directory on an fsspec filesystem by streaming its bytes."""
    if fs.isdir(path):
        root = path.rstrip("/")
        entries = [
            (name[len(root) + 1 :], _stream_hash(fs, name))
            for name in fs.find(root)
            if name != root
        ]
        return _directory_hash(entries)
    return _stream_hash(fs, path)


def hash_file(
    path_or_url: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> str:
    """Content hash of a file (plain blake3, as ``b3sum``) or a directory (Merkle hash).

    Local files are memory-mapped and hashed on all cores; URLs (``s3://...``) are streamed
    through fsspec in 8 MiB blocks. A directory such as an OME-Zarr hashes as
    ``combine("dir", *sorted(f"{relpath}\\0{filehash}"))``.
    """
    text = os.fspath(path_or_url)
    try:
        if not _is_remote(text):
            local = text.removeprefix("file://")
            return _local_hash(str(Path(local).expanduser()))
        import fsspec

        fs, path = fsspec.core.url_to_fs(text, **(storage_options or {}))
        return hash_fs_path(fs, path)
    except FileNotFoundError as exc:
        raise ArtifactNotFound(
            f"Cannot hash {text!r}: no such file; check the path or create the file first."
        ) from exc
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"Cannot hash {text!r}: {exc}; check the path and that you may read it."
        ) from exc


# ---------------------------------------------------------------------------------------------
# Values: every encoding is a tag, then either a length-prefixed payload (atoms) or an item
# count followed by the items' own encodings (containers). This makes it prefix-free, so two
# different values can never produce the same byte stream.


def _n(value: int) -> bytes:
    return value.to_bytes(8, "little")


def _atom(sink: _Sink, tag: bytes, payload: bytes) -> None:
    sink.update(tag + b":" + _n(len(payload)) + payload)


def _container(sink: _Sink, tag: bytes, count: int) -> None:
    sink.update(tag + b"[" + _n(count))


class _Collect:
    """A sink that keeps the bytes, to sort dict keys and set items by their encoding."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def update(self, data: bytes | memoryview, /) -> None:
        self.parts.append(bytes(data))

    def value(self) -> bytes:
        return b"".join(self.parts)


def _encoded(value: Any) -> bytes:
    sink = _Collect()
    _encode(value, sink)
    return sink.value()


def _type_name(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _encode(value: Any, sink: _Sink) -> None:
    # Exact builtin types skip singledispatch's MRO walk: most parameters are these, and a
    # 10,000-entry dict is hashed twice as fast. Subclasses still take the dispatch path.
    fast = _EXACT.get(type(value))
    if fast is not None:
        fast(value, sink)
    elif _numpy_first(value):
        _encode_numpy_scalar(value, sink)
    else:
        _encode_by_type(value, sink)


@functools.singledispatch
def _encode_by_type(value: Any, sink: _Sink) -> None:
    # Types from optional packages and structural types are recognised here, so that importing
    # this module never imports numpy, pandas or pydantic.
    for check, handler in _LAZY:
        if check(value):
            handler(value, sink)
            return
    raise UnhashableValueError(
        f"Cannot hash a value of type {_type_name(value)!r}: databacked hashes JSON-like data, "
        "numpy arrays, pandas objects, pydantic models, dataclasses, paths, dates, enums and "
        "UUIDs; pass it as a file, give the step cache=False, or convert it to one of those."
    )


@_encode_by_type.register(type(None))
def _(value: None, sink: _Sink) -> None:
    _atom(sink, b"none", b"")


@_encode_by_type.register(bool)
def _(value: bool, sink: _Sink) -> None:
    _atom(sink, b"bool", b"1" if value else b"0")


@_encode_by_type.register(int)
def _(value: int, sink: _Sink) -> None:
    if isinstance(value, enum.Enum):  # IntEnum/IntFlag: their MRO puts int before Enum
        _encode_enum(value, sink)
        return
    _atom(sink, b"int", str(int(value)).encode())


@_encode_by_type.register(float)
def _(value: float, sink: _Sink) -> None:
    # All NaNs are one value. -0.0 stays distinct from 0.0: copysign/atan2/1/x tell them apart.
    text = "nan" if math.isnan(value) else repr(float(value))
    _atom(sink, b"float", text.encode())


@_encode_by_type.register(complex)
def _(value: complex, sink: _Sink) -> None:
    _container(sink, b"complex", 2)
    _encode(value.real, sink)
    _encode(value.imag, sink)


@_encode_by_type.register(decimal.Decimal)
def _(value: decimal.Decimal, sink: _Sink) -> None:
    _atom(sink, b"decimal", str(value).encode())


@_encode_by_type.register(str)
def _(value: str, sink: _Sink) -> None:
    if isinstance(value, enum.Enum):  # StrEnum
        _encode_enum(value, sink)
        return
    _atom(sink, b"str", value.encode("utf-8", "surrogatepass"))


@_encode_by_type.register(bytes)
@_encode_by_type.register(bytearray)
@_encode_by_type.register(memoryview)
def _(value: bytes | bytearray | memoryview, sink: _Sink) -> None:
    _atom(sink, b"bytes", bytes(value))


@_encode_by_type.register(list)
def _(value: list[Any], sink: _Sink) -> None:
    _container(sink, b"list", len(value))
    for item in value:
        _encode(item, sink)


@_encode_by_type.register(tuple)
def _(value: tuple[Any, ...], sink: _Sink) -> None:
    _container(sink, b"tuple", len(value))
    for item in value:
        _encode(item, sink)


@_encode_by_type.register(dict)
def _(value: dict[Any, Any], sink: _Sink) -> None:
    items = sorted((_encoded(k), v) for k, v in value.items()) if value else []
    _container(sink, b"dict", len(items))
    for key, item in items:
        sink.update(key)
        _encode(item, sink)


@_encode_by_type.register(set)
@_encode_by_type.register(frozenset)
def _(value: set[Any] | frozenset[Any], sink: _Sink) -> None:
    items = sorted(_encoded(item) for item in value)
    _container(sink, b"set", len(items))
    for item in items:
        sink.update(item)


@_encode_by_type.register(PurePath)
def _(value: PurePath, sink: _Sink) -> None:
    _atom(sink, b"path", value.as_posix().encode("utf-8", "surrogateescape"))


@_encode_by_type.register(dt.datetime)
def _(value: dt.datetime, sink: _Sink) -> None:
    _atom(sink, b"datetime", value.isoformat().encode())


@_encode_by_type.register(dt.date)
def _(value: dt.date, sink: _Sink) -> None:
    _atom(sink, b"date", value.isoformat().encode())


@_encode_by_type.register(dt.time)
def _(value: dt.time, sink: _Sink) -> None:
    _atom(sink, b"time", value.isoformat().encode())


@_encode_by_type.register(dt.timedelta)
def _(value: dt.timedelta, sink: _Sink) -> None:
    _atom(sink, b"timedelta", f"{value.days}:{value.seconds}:{value.microseconds}".encode())


@_encode_by_type.register(uuid.UUID)
def _(value: uuid.UUID, sink: _Sink) -> None:
    _atom(sink, b"uuid", value.hex.encode())


@_encode_by_type.register(enum.Enum)
def _encode_enum(value: enum.Enum, sink: _Sink) -> None:
    _container(sink, b"enum", 2)
    _atom(sink, b"class", _type_name(value).encode())
    _encode(value.value, sink)


# --- optional packages, checked only when already imported (a value of their type exists) ---


def _module_has(module: str, attr: str, value: Any) -> bool:
    mod = sys.modules.get(module)
    return mod is not None and isinstance(value, getattr(mod, attr))


def _encode_ndarray(value: Any, sink: _Sink) -> None:
    import numpy as np

    _container(sink, b"ndarray", 3)
    _atom(sink, b"dtype", value.dtype.str.encode())
    _encode(tuple(int(n) for n in value.shape), sink)
    if value.dtype.hasobject:
        _encode(value.tolist(), sink)
        return
    flat = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
    sink.update(b"data:" + _n(flat.nbytes))
    sink.update(memoryview(flat))


def _encode_numpy_scalar(value: Any, sink: _Sink) -> None:
    import numpy as np

    _container(sink, b"npscalar", 1)
    _encode_ndarray(np.asarray(value), sink)


def _encode_pandas(value: Any, sink: _Sink) -> None:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        _container(sink, b"dataframe", 3 + value.shape[1])
        _encode(list(value.columns), sink)
        _encode([str(t) for t in value.dtypes], sink)
        _encode_pandas(value.index, sink)
        for i in range(value.shape[1]):
            _encode_ndarray(value.iloc[:, i].to_numpy(), sink)
    elif isinstance(value, pd.Series):
        _container(sink, b"series", 4)
        _encode(value.name, sink)
        _atom(sink, b"dtype", str(value.dtype).encode())
        _encode_pandas(value.index, sink)
        _encode_ndarray(value.to_numpy(), sink)
    else:
        _container(sink, b"index", 4)
        _encode(type(value).__name__, sink)
        _encode(list(value.names), sink)
        _atom(sink, b"dtype", str(value.dtype).encode())
        _encode_ndarray(value.to_numpy(), sink)


def _is_pydantic(value: Any) -> bool:
    return _module_has("pydantic", "BaseModel", value)


def _encode_pydantic(value: Any, sink: _Sink) -> None:
    _container(sink, b"model", 2)
    _atom(sink, b"class", _type_name(value).encode())
    _encode(value.model_dump(mode="python"), sink)


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _encode_dataclass(value: Any, sink: _Sink) -> None:
    fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    _container(sink, b"dataclass", 2)
    _atom(sink, b"class", _type_name(value).encode())
    _encode(fields, sink)


def _is_pandas(value: Any) -> bool:
    mod = sys.modules.get("pandas")
    return mod is not None and isinstance(value, mod.DataFrame | mod.Series | mod.Index)


_LAZY: list[tuple[Callable[[Any], bool], Callable[[Any, _Sink], None]]] = [
    (lambda v: _module_has("numpy", "ndarray", v), _encode_ndarray),
    (lambda v: _module_has("numpy", "generic", v), _encode_numpy_scalar),
    (_is_pandas, _encode_pandas),
    (_is_pydantic, _encode_pydantic),
    (_is_dataclass_instance, _encode_dataclass),
]


def _numpy_first(value: Any) -> bool:
    # numpy.float64 subclasses float and numpy.bool_ looks like bool; numpy scalars keep their
    # dtype in the hash so float32(1.5) and float64(1.5) stay distinct and stable.
    return type(value).__module__ == "numpy" and _module_has("numpy", "generic", value)


_EXACT: dict[type, Callable[[Any, _Sink], None]] = {
    t: _encode_by_type.dispatch(t) for t in (type(None), bool, int, float, str, list, tuple, dict)
}


def hash_value(value: Any) -> str:
    """Canonical, type-tagged digest of a parameter value (hex, 64 characters).

    Raises ``UnhashableValueError`` for a type without a canonical encoding.
    """
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update(SCHEME.encode() + b"\0value\0")
    try:
        _encode(value, h)
    except RecursionError as exc:
        raise UnhashableValueError(
            f"Cannot hash a value of type {_type_name(value)!r}: it contains itself or nests "
            "too deeply; pass a flat copy, or give the step cache=False."
        ) from exc
    return h.hexdigest()


def local_stamp(st: os.stat_result) -> str:
    """A local file's stamp in the stat caches: it changes whenever the bytes may have
    (mtime, inode, size), unless written within ``RACY_NS`` of being looked at."""
    return f"m:{st.st_mtime_ns}:{st.st_ino}:{st.st_size}"


__all__ = [
    "RACY_NS",
    "SCHEME",
    "StreamHasher",
    "combine",
    "hash_bytes",
    "hash_file",
    "hash_fs_path",
    "hash_value",
    "local_stamp",
]
