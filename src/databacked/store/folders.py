"""Crash-consistent folder artifacts (Zarr): staged, hashed while written, then swapped in.

Locally a folder is written under a staging name beside its target and swapped in with one
``renameat2(RENAME_EXCHANGE)``: at every instant the target holds either the complete old
folder or the complete new one. Where the kernel or filesystem cannot exchange, the old
folder is first renamed to ``.databacked-old-<name>``; a kill between the two renames leaves
that name behind, and the next read of the target (``Store.info``), ``gc`` or
``databacked verify --repair`` renames it back before anything reads the target.

Object stores cannot rename. The folder is staged under a ``.databacked-tmp-*`` prefix (a
failed write leaves the previous version untouched), then a marker
``.databacked-writing-<name>`` is put beside the target, the old objects are deleted, the new
ones copied in server-side, and the marker removed. While a marker exists the target counts
as missing (``Store.info`` raises ``ArtifactNotFound``), so an interrupted copy is never read
or cached; the next run rewrites it and ``verify --repair`` removes it.

The content hash is computed from the bytes zarr hands to the store (``HashingZarrStore``),
not by reading the folder back. A listing (names and sizes only) checks that every file was
seen; a file written some other way (through ``.path`` directly) is hashed by reading it,
and ``DirectoryWriter.read_back`` counts those bytes so the docs and ``make bench`` can say.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import blake3

from databacked.crashpoints import crashpoint
from databacked.errors import DatabackedError
from databacked.hashing import _directory_hash, _local_file_hash, _stream_hash
from databacked.store.base import STAGING_PREFIX, WriteResult, _fsync_path, _fsync_tree

if TYPE_CHECKING:
    from databacked.store.core import Store

log = logging.getLogger("databacked.store")

OLD_PREFIX = ".databacked-old-"
"""A local folder moved aside during a swap without RENAME_EXCHANGE."""
WRITING_PREFIX = ".databacked-writing-"
"""A marker beside an object-store folder whose objects are being replaced."""

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where that is not supported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), a)


def _zarr_wrapper() -> type:
    from zarr.storage import WrapperStore

    class HashingZarrStore(WrapperStore):  # type: ignore[type-arg]
        """A zarr v3 store that hashes every value on its way to the wrapped store."""

        def __init__(self, store: Any, seen: dict[str, tuple[str, int]] | None = None) -> None:
            super().__init__(store)
            self.seen: dict[str, tuple[str, int]] = {} if seen is None else seen
            self._lock = threading.Lock()

        def _with_store(self, store: Any) -> Any:
            return type(self)(store, self.seen)

        def _note(self, key: str, value: Any) -> None:
            data = value.as_numpy_array()
            digest = blake3.blake3(data).hexdigest()
            with self._lock:
                self.seen[key] = (digest, int(data.nbytes))

        async def set(self, key: str, value: Any) -> None:
            crashpoint("store.dir.write")
            await self._store.set(key, value)
            self._note(key, value)

        async def set_if_not_exists(self, key: str, value: Any) -> None:
            if not await self._store.exists(key):
                await self.set(key, value)

        async def _set_many(self, values: Any) -> None:
            for key, value in values:
                await self.set(key, value)

        async def delete(self, key: str) -> None:
            await self._store.delete(key)
            with self._lock:
                self.seen.pop(key, None)

        async def delete_dir(self, prefix: str) -> None:
            await self._store.delete_dir(prefix)
            with self._lock:
                for key in [k for k in self.seen if k.startswith(prefix.rstrip("/") + "/")]:
                    del self.seen[key]

    return HashingZarrStore


class DirectoryWriter:
    """Where a directory artifact (Zarr) is written: ``.store`` (zarr v3, hashed while
    written), or ``.path`` plus ``storage_options`` for other writers; ``.result`` after."""

    def __init__(self, store: Store, relpath: str) -> None:
        self._store = store
        self.relpath = relpath
        self.storage_options = dict(store.storage_options) if not store.is_local else None
        folder, _, name = store.full_path(relpath).rpartition("/" if not store.is_local else os.sep)
        self._name = name
        self._staging = f"{folder}{os.sep if store.is_local else '/'}{STAGING_PREFIX}"
        self._staging += f"{uuid.uuid4().hex[:12]}-{name[:80]}"
        # Not store.uri(): that one is redacted for display, this one must open.
        self.path = self._staging if store.is_local else f"{store.protocol}://{self._staging}"
        self.seen: dict[str, tuple[str, int]] = {}
        self._names: list[str] = []
        self.read_back = 0
        """Bytes hashed by reading them back (files written around ``.store``)."""
        self.result: WriteResult | None = None

    @property
    def mapper(self) -> Any:
        """An fsspec mapping over the folder (for libraries that take a MutableMapping);
        its files are hashed by reading them back once the folder is complete."""
        import fsspec

        return fsspec.get_mapper(self.path, **(self.storage_options or {}))

    @property
    def store(self) -> Any:
        """A zarr v3 store over the staging folder that hashes what it writes."""
        import zarr.storage

        if self._store.is_local:
            inner: Any = zarr.storage.LocalStore(self.path)
        else:
            inner = zarr.storage.FsspecStore.from_url(
                self.path, storage_options=self.storage_options
            )
        return _zarr_wrapper()(inner, self.seen)

    def __enter__(self) -> DirectoryWriter:
        if self._store.is_local:
            self._store._wrap("create", self.relpath, os.makedirs, self.path)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._discard()
            if isinstance(exc, OSError) and not isinstance(exc, DatabackedError):
                raise self._store._error("write", self.relpath, exc) from exc
            return
        try:
            crashpoint("store.dir.staged")
            digest, size = self._hash()
            if self._store.is_local:
                self._swap_local()
            else:
                self._swap_remote()
        except BaseException as failure:
            self._discard()
            if isinstance(failure, OSError) and not isinstance(failure, DatabackedError):
                raise self._store._error("write", self.relpath, failure) from failure
            raise
        info = self._store.info(self.relpath)
        self.result = WriteResult(self.relpath, size, digest, info.stamp)

    def _discard(self) -> None:
        with contextlib.suppress(Exception):
            if self._store.is_local:
                shutil.rmtree(self._staging, ignore_errors=True)
            else:
                self._store.fs.rm(self._staging, recursive=True)

    # --- hashing ----------------------------------------------------------------------------

    def _listing(self) -> dict[str, int]:
        """Every file of the staging folder with its size: a listing, no bytes read."""
        root = self._staging
        if self._store.is_local:
            found: dict[str, int] = {}
            for folder, _dirs, files in os.walk(root):
                for name in files:
                    full = os.path.join(folder, name)
                    rel = os.path.relpath(full, root).replace(os.sep, "/")
                    found[rel] = os.stat(full).st_size
            return found
        fs = self._store.fs
        fs.invalidate_cache(root)
        entries = self._store._wrap("list", self.relpath, fs.find, root, detail=True)
        cut = len(root.rstrip("/")) + 1
        return {
            name[cut:]: int(e.get("size") or 0)
            for name, e in entries.items()
            if e.get("type") != "directory" and len(name) > cut
        }

    def _hash(self) -> tuple[str, int]:
        """The folder's Merkle hash from the digests seen while writing; files not seen (or
        changed since) are hashed by reading them, the only read-back left."""
        entries = []
        total = 0
        listing = self._listing()
        self._names = sorted(listing)
        for rel, size in sorted(listing.items()):
            seen = self.seen.get(rel)
            if seen is not None and seen[1] == size:
                digest = seen[0]
            else:
                digest = self._read_hash(rel)
                self.read_back += size
            entries.append((rel, digest))
            total += size
        if self.read_back:
            log.debug("%s: %d bytes hashed by reading back", self.relpath, self.read_back)
        return _directory_hash(entries), total

    def _read_hash(self, rel: str) -> str:
        if self._store.is_local:
            return _local_file_hash(os.path.join(self._staging, *rel.split("/")))
        full = f"{self._staging}/{rel}"
        return self._store._wrap("hash", self.relpath, _stream_hash, self._store.fs, full)

    # --- the swap ---------------------------------------------------------------------------

    def _swap_local(self) -> None:
        store = self._store
        final = store.full_path(self.relpath)
        if store.durability == "fsync":
            _fsync_tree(self._staging)
        if not os.path.lexists(final):
            store._wrap("write", self.relpath, os.rename, self._staging, final)
        elif store._wrap("replace", self.relpath, exchange, self._staging, final):
            crashpoint("store.dir.swapped")
            # the old folder now sits at the staging name
            store._wrap("delete", self.relpath, shutil.rmtree, self._staging, ignore_errors=True)
        else:
            old = os.path.join(os.path.dirname(final), OLD_PREFIX + self._name)
            if os.path.lexists(old):  # a completed earlier swap that was killed before cleanup
                shutil.rmtree(old, ignore_errors=True)
            store._wrap("replace", self.relpath, os.rename, final, old)
            crashpoint("store.dir.swapped")
            store._wrap("replace", self.relpath, os.rename, self._staging, final)
            store._wrap("delete", self.relpath, shutil.rmtree, old, ignore_errors=True)
        store._written(final)

    def _swap_remote(self) -> None:
        store = self._store
        fs = store.fs
        final = store.full_path(self.relpath)
        marker = f"{final.rpartition('/')[0]}/{WRITING_PREFIX}{self._name}"
        note = json.dumps({"staging": self._staging, "time": time.time()}).encode()
        store._wrap("mark", self.relpath, fs.pipe_file, marker, note)
        with contextlib.suppress(FileNotFoundError):
            store._wrap("replace", self.relpath, fs.rm, final, recursive=True)
        fs.invalidate_cache(final)
        crashpoint("store.dir.swapped")
        names = self._names
        if names:
            sources = [f"{self._staging}/{rel}" for rel in names]
            targets = [f"{final}/{rel}" for rel in names]
            store._wrap("copy", self.relpath, fs.copy, sources, targets)
        fs.invalidate_cache(final)
        store._wrap("delete", self.relpath, fs.rm, self._staging, recursive=True)
        store._wrap("unmark", self.relpath, fs.rm_file, marker)
        fs.invalidate_cache(marker.rpartition("/")[0])


# --- repair -----------------------------------------------------------------------------------


def interrupted_marker(store: Store, relpath: str) -> str | None:
    """The marker (or moved-aside folder) left by a killed swap of ``relpath``, if any."""
    full = store.full_path(relpath)
    if store.is_local:
        old = os.path.join(os.path.dirname(full), OLD_PREFIX + os.path.basename(full))
        return old if os.path.lexists(old) else None
    marker = f"{full.rpartition('/')[0]}/{WRITING_PREFIX}{full.rpartition('/')[2]}"
    store.fs.invalidate_cache(marker.rpartition("/")[0])
    return marker if store.fs.exists(marker) else None


def repair_folder(store: Store, relpath: str) -> str | None:
    """Undo a killed swap of ``relpath``: put the old local folder back (or drop it when
    the new one made it in), or remove a half-copied object-store folder. What was done."""
    marker = interrupted_marker(store, relpath)
    if marker is None:
        return None
    full = store.full_path(relpath)
    if store.is_local:
        if os.path.lexists(full):
            shutil.rmtree(marker, ignore_errors=True)
            return "removed the previous version left beside it"
        os.rename(marker, full)
        _fsync_path(os.path.dirname(full))
        log.warning("%s: restored the previous version after an interrupted write", relpath)
        return "restored the previous version"
    fs = store.fs
    with contextlib.suppress(FileNotFoundError):
        staging = json.loads(fs.cat_file(marker)).get("staging")
        if isinstance(staging, str) and STAGING_PREFIX in staging.rpartition("/")[2]:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(staging, recursive=True)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(full, recursive=True)
    fs.rm_file(marker)
    fs.invalidate_cache(full)
    fs.invalidate_cache(marker.rpartition("/")[0])
    log.warning("%s: removed a folder whose write was interrupted", relpath)
    return "removed a half-written folder"


def interrupted(store: Store, prefix: str = "") -> list[str]:
    """Paths of folders whose swap was killed, found by one listing of the store."""
    found: set[str] = set()
    for info in store.list(prefix):
        folder, _, name = info.path.rpartition("/")
        parts = info.path.split("/")
        for i, part in enumerate(parts):
            if part.startswith(OLD_PREFIX):
                found.add("/".join([*parts[:i], part[len(OLD_PREFIX) :]]))
                break
        if name.startswith(WRITING_PREFIX):
            found.add(f"{folder}/{name[len(WRITING_PREFIX) :]}".lstrip("/"))
    return sorted(found)


__all__ = [
    "OLD_PREFIX",
    "WRITING_PREFIX",
    "DirectoryWriter",
    "exchange",
    "interrupted",
    "interrupted_marker",
    "repair_folder",
]
