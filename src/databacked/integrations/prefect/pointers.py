"""Slim pointers to files: what a Prefect record holds instead of the data.

A pointer names a file (store URL + path), its content hash, size and stamp, its format and
the call key that made it. Loading checks the bytes against the hash; the check is decided by
``stat`` alone while the file's stamp is the recorded one, so a cached rerun reads no bytes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from databacked.errors import ArtifactNotFound, IntegrityError
from databacked.store import Store

_VERIFIED: dict[tuple[str, str], str] = {}
"""(uri, stamp) -> hash already checked in this process."""
_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Pointer:
    """One file made through the integration, as its Prefect record remembers it."""

    store: str
    """Store URL the path is relative to."""
    path: str
    """Path inside the store."""
    hash: str
    """Content hash (blake3 of the bytes)."""
    size: int
    stamp: str
    """``FileInfo.stamp`` right after writing (mtime + inode locally, ETag on S3)."""
    format: dict[str, Any]
    """Format spec (``{"name": "ome-tiff", "dims": ...}``)."""
    key: str | None = None
    """Key of the call that wrote it."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Small extras: shape and dtype of arrays, CPR metadata and resolution."""

    @property
    def uri(self) -> str:
        return self.the_store().uri(self.path)

    def the_store(self) -> Store:
        from databacked.integrations.prefect.context import store

        return store(self.store)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "store": self.store,
            "path": self.path,
            "hash": self.hash,
            "size": self.size,
            "stamp": self.stamp,
            "format": self.format,
        }
        if self.key:
            out["key"] = self.key
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pointer:
        return cls(
            store=data["store"],
            path=data["path"],
            hash=data["hash"],
            size=int(data["size"]),
            stamp=data.get("stamp", ""),
            format=dict(data.get("format") or {}),
            key=data.get("key"),
            meta=dict(data.get("meta") or {}),
        )

    @classmethod
    def from_record(
        cls, store: Store, record: Any, fmt: Any, key: str | None, meta: dict | None = None
    ) -> Pointer:
        """From the ArtifactRecord a format's write returned."""
        extra = {k: record.metadata[k] for k in ("shape", "dtype") if k in record.metadata}
        return cls(
            store=store.url,
            path=record.path,
            hash=record.hash,
            size=record.size,
            stamp=record.stamp,
            format={k: v for k, v in fmt.spec().items() if v is not None},
            key=key,
            meta={**extra, **(meta or {})},
        )

    def record(self) -> Any:
        from databacked.formats.base import ArtifactRecord

        return ArtifactRecord(
            path=self.path,
            hash=self.hash,
            size=self.size,
            format=str(self.format.get("name", "")),
            stamp=self.stamp,
            metadata=dict(self.meta),
        )

    def check(self) -> None:
        """IntegrityError unless the file still holds the recorded bytes (stat first)."""
        check_file(self.the_store(), self.path, self.hash, self.size, self.stamp)

    def read(self, *, lazy: bool = False) -> Any:
        """The value, read through its format after the hash check."""
        from databacked.formats.registry import get_format

        self.check()
        return get_format(self.format).read(self.the_store(), self.path, lazy=lazy)


def check_file(store: Store, path: str, expected: str, size: int | None, stamp: str) -> None:
    """Trust ``stat`` while the stamp is the recorded one; re-hash (once per stamp) otherwise."""
    try:
        info = store.info(path)
    except ArtifactNotFound:
        raise
    uri = store.uri(path)
    if size is not None and info.size != size:
        raise IntegrityError(
            f"{uri} is {info.size} bytes but was written with {size}; it changed since, so "
            "its task runs again."
        )
    if stamp and info.stamp == stamp:
        return
    with _LOCK:
        known = _VERIFIED.get((uri, info.stamp))
    actual = known or store.hash(path)
    if actual != expected:
        raise IntegrityError(
            f"{uri} has changed since it was written (hash {expected[:12]} expected, "
            f"{actual[:12]} found), so its task runs again."
        )
    with _LOCK:
        _VERIFIED[(uri, info.stamp)] = actual


__all__ = ["Pointer", "check_file"]
