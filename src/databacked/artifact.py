"""The Artifact handle and ``db.save`` / ``db.load``: one file in a store, by URL.

A URL names a store and a path in it: a local path or ``file://`` URL is the store of its
parent folder; ``s3://bucket/a/b.tif`` is ``Store("s3://bucket/a")`` and ``"b.tif"``. The
format comes from ``format=``, else the extension, else the value's type (DESIGN section 4).
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from databacked.errors import IntegrityError
from databacked.formats.base import ArtifactRecord, Format
from databacked.formats.registry import get_format, resolve_format
from databacked.store import Store


class File(str):
    """Annotation marker: a step parameter that is an input file, hashed by content."""

    __slots__ = ()


def split_url(
    url: str | os.PathLike[str], storage_options: dict | None = None
) -> tuple[Store, str]:
    """The store of the URL's parent folder (or bucket prefix) and the file's name in it."""
    text = os.fspath(url)
    if text.startswith("file://"):
        text = text[len("file://") :]
    text = text.rstrip("/") or text
    if "://" in text:
        protocol, _, rest = text.partition("://")
        parent, _, name = rest.rpartition("/")
        root = f"{protocol}://{parent}" if parent else f"{protocol}://"
        return Store(root, storage_options=storage_options), name
    full = os.path.abspath(os.path.expanduser(text))
    folder, name = os.path.split(full)
    return Store(folder, storage_options=storage_options), name


class Artifact:
    """A lazy handle on one file (or Zarr directory) in a store.

    Nothing is read until asked: ``hash``/``size`` come from the write record when there is
    one, else from the store; ``load()`` reads the value through its format.
    """

    __slots__ = ("_format", "_hash", "_metadata", "_size", "path", "stamp", "store")

    def __init__(
        self,
        store: Store | str,
        path: str,
        *,
        hash: str | None = None,
        size: int | None = None,
        format: Format | str | dict | None = None,
        metadata: dict[str, Any] | None = None,
        stamp: str = "",
    ) -> None:
        self.store = Store.from_url(store)
        self.path = self.store.check_path(path)
        self._hash = hash
        self._size = size
        self._format = format
        self._metadata = metadata
        self.stamp = stamp

    @classmethod
    def from_record(cls, store: Store | str, record: Any) -> Artifact:
        """From an ArtifactRecord (or any object with path, hash, size, format, metadata)."""
        return cls(
            store,
            record.path,
            hash=record.hash,
            size=record.size,
            format=record.format,
            metadata=dict(record.metadata or {}),
            stamp=getattr(record, "stamp", "") or "",
        )

    def to_record(self) -> ArtifactRecord:
        return ArtifactRecord(
            path=self.path,
            hash=self.hash,
            size=self.size,
            format=self.format.name,
            stamp=self.stamp,
            metadata=self.metadata,
        )

    @property
    def uri(self) -> str:
        return self.store.uri(self.path)

    @property
    def hash(self) -> str:
        if self._hash is None:
            self._hash = self.store.hash(self.path)
        return self._hash

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = self.store.info(self.path).size
        return self._size

    @property
    def format(self) -> Format:
        if not isinstance(self._format, Format):
            if self._format is None:
                self._format = resolve_format(self.path)
            else:
                self._format = get_format(self._format)
        return self._format

    @property
    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            reader = getattr(self.format, "read_metadata", None)
            self._metadata = dict(reader(self.store, self.path)) if reader else {}
        return self._metadata

    def load(self, *, lazy: bool = False, verify: bool = False) -> Any:
        """The value, read through the artifact's format (dask-backed images when lazy)."""
        if verify:
            self.verify()
        return self.format.read(self.store, self.path, lazy=lazy)

    def open(self) -> BinaryIO:
        """The raw bytes as a read-only binary file object."""
        return self.store.open(self.path)

    def verify(self) -> None:
        """Re-hash the bytes; IntegrityError if they differ from the recorded hash."""
        if self._hash is None:
            self._hash = self.store.hash(self.path)
            return
        actual = self.store.hash(self.path)
        if actual != self._hash:
            raise IntegrityError(
                f"{self.uri} has changed since it was recorded: expected hash "
                f"{self._hash[:12]}, found {actual[:12]}; re-create it (re-run its step) or "
                "restore the original file."
            )

    def __repr__(self) -> str:
        known = f", hash={self._hash[:12]!r}" if self._hash else ""
        fmt = self._format.name if isinstance(self._format, Format) else self._format
        fmt_text = f", format={fmt!r}" if isinstance(fmt, str) else ""
        return f"Artifact({self.uri!r}{known}{fmt_text})"

    def _identity(self) -> tuple[str, str]:
        # the full URI, so a file reached through its folder's store or the store root is one
        return (self.uri, self.hash)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Artifact) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __getstate__(self) -> dict[str, Any]:
        fmt = self._format.spec() if isinstance(self._format, Format) else self._format
        return {
            "store": self.store,
            "path": self.path,
            "hash": self._hash,
            "size": self._size,
            "format": fmt,
            "metadata": self._metadata,
            "stamp": self.stamp,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.store = state["store"]
        self.path = state["path"]
        self._hash = state["hash"]
        self._size = state["size"]
        self._format = state["format"]
        self._metadata = state["metadata"]
        self.stamp = state["stamp"]


def save(
    value: Any,
    url: str | os.PathLike[str],
    format: Format | str | dict | None = None,
    *,
    storage_options: dict | None = None,
) -> Artifact:
    """Write ``value`` to ``url`` atomically in a native format; returns its Artifact."""
    store, name = split_url(url, storage_options)
    fmt = resolve_format(name, value, format)
    record = fmt.write(value, store, name)
    store.sync()
    artifact = Artifact.from_record(store, record)
    artifact._format = fmt  # keep the options (dims, channel names) the caller chose
    return artifact


def load(
    url_or_artifact: Artifact | str | os.PathLike[str],
    format: Format | str | dict | None = None,
    *,
    lazy: bool = False,
    verify: bool = False,
    storage_options: dict | None = None,
) -> Any:
    """Read a file (or an Artifact) back as a value; images go through bioio.

    ``verify=True`` re-hashes the bytes first and raises IntegrityError when an Artifact's
    recorded hash no longer matches. A missing file raises ArtifactNotFound.
    """
    if isinstance(url_or_artifact, Artifact):
        artifact = url_or_artifact
        if format is not None:  # read these bytes another way; the handle stays as it was
            artifact = Artifact(
                artifact.store,
                artifact.path,
                hash=artifact._hash,
                size=artifact._size,
                format=get_format(format),
                stamp=artifact.stamp,
            )
    else:
        store, name = split_url(url_or_artifact, storage_options)
        store.info(name)  # ArtifactNotFound before any format is guessed
        artifact = Artifact(store, name, format=resolve_format(name, None, format))
    return artifact.load(lazy=lazy, verify=verify)


__all__ = ["Artifact", "File", "load", "save", "split_url"]
