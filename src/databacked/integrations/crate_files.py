"""The files of an RO-Crate export: where each lands in the crate, its bytes and its sha256.

A file is named in the crate by its path relative to the folder that holds the store (so
``data/normalized/a.ome.tiff`` and ``raw/plate1/a.tif`` keep their layout); a file from
elsewhere goes under ``external/``. Copying reads each file once, computing blake3 (to check
the bytes are still those the catalog recorded) and sha256 together; a sha256 is kept in the
catalog by blake3 hash, so no content is read for it twice.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from blake3 import blake3

from databacked.store import Store

if TYPE_CHECKING:
    from databacked.catalog import Catalog

log = logging.getLogger("databacked.integrations.crate_files")

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class CrateFile:
    """One file (or folder, for OME-Zarr) the crate describes."""

    crate_path: str
    """Relative POSIX path inside the crate (a folder ends with ``/``)."""
    uri: str
    """Where the bytes live now: an absolute local path or an object-store URL."""
    hash: str
    """blake3 content hash recorded by the catalog."""
    size: int | None = None
    """Size in bytes recorded by the catalog (None when unknown)."""
    format: str = ""
    """databacked format name (``ome-tiff``, ``csv`` ...), empty when unknown."""
    metadata: tuple[tuple[str, object], ...] = ()
    """Format metadata (dims, channel names, physical pixel sizes ...) as sorted pairs."""
    store_url: str = ""
    """Store the file belongs to (empty for a file outside any store)."""
    store_path: str = ""
    """Path relative to ``store_url``."""

    @property
    def is_dir(self) -> bool:
        return self.crate_path.endswith("/")


def crate_path(store: Store, path: str, content_hash: str, *, folder: bool = False) -> str:
    """Where a store path (or an absolute local path) lands inside the crate."""
    local = _local(store, path)
    name: str
    if local is not None:
        base = Path(store.url).parent if store.is_local else None
        try:
            name = local.relative_to(base).as_posix() if base else ""
        except ValueError:
            name = ""
        if not name:
            name = f"external/{content_hash[:12]}/{local.name}"
    else:
        root = PurePosixPath(store.url.rstrip("/")).name or "store"
        name = posixpath.join(root, path)
    return name.rstrip("/") + ("/" if folder else "")


def _local(store: Store, path: str) -> Path | None:
    if path.startswith("/"):
        return Path(path)
    if store.is_local:
        return Path(store.url) / path
    return None


def _open(file: CrateFile) -> BinaryIO:
    if file.store_url and not file.store_path.startswith("/"):
        return Store.from_url(file.store_url).open(file.store_path)
    return open(file.uri, "rb")


def copy_and_digest(file: CrateFile, out: Path | None) -> tuple[str, str, int]:
    """(blake3, sha256, size) of a file's bytes, copying them to ``out`` when given."""
    b3, sha, size = blake3(), hashlib.sha256(), 0
    sink = None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        sink = out.open("wb")
    try:
        with _open(file) as src:
            while chunk := src.read(_CHUNK):
                b3.update(chunk)
                sha.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
    finally:
        if sink is not None:
            sink.close()
    return b3.hexdigest(), sha.hexdigest(), size


def copy_folder(file: CrateFile, out: Path) -> None:
    """Copy a folder artifact (OME-Zarr) into the crate as it is."""
    if file.store_url and not Store.from_url(file.store_url).is_local:
        store = Store.from_url(file.store_url)
        for info in store.list(file.store_path):
            target = out / PurePosixPath(info.path).relative_to(file.store_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.read_bytes(info.path))
        return
    shutil.copytree(file.uri, out, dirs_exist_ok=True)


@dataclass
class Digests:
    """sha256 per crate file, and the files whose bytes no longer match the catalog."""

    sha256: dict[str, str]
    """crate path -> sha256 hex."""
    sizes: dict[str, int]
    """crate path -> size in bytes."""
    changed: list[str]
    """crate paths whose current bytes differ from the recorded hash (not copied)."""
    missing: list[str]
    """crate paths whose file is gone."""


def materialise(files: Iterable[CrateFile], catalog: Catalog, out: Path, *, copy: bool) -> Digests:
    """Copy the files into ``out`` (when ``copy``) and find each one's sha256."""
    files = list(files)
    known = catalog.sha256_get(f.hash for f in files if not f.is_dir)
    digests = Digests({}, {}, [], [])
    fresh: list[tuple[str, str, int]] = []
    for f in files:
        if f.is_dir:
            if copy:
                try:
                    copy_folder(f, out / f.crate_path)
                except FileNotFoundError:
                    digests.missing.append(f.crate_path)
            continue
        if not copy and f.hash in known:
            digests.sha256[f.crate_path], digests.sizes[f.crate_path] = known[f.hash]
            continue
        target = out / f.crate_path if copy else None
        try:
            b3, sha, size = copy_and_digest(f, target)
        except FileNotFoundError:
            digests.missing.append(f.crate_path)
            continue
        if b3 != f.hash:
            log.warning("%s changed since it was recorded; left out of the crate", f.uri)
            digests.changed.append(f.crate_path)
            if target is not None:
                target.unlink(missing_ok=True)
            continue
        digests.sha256[f.crate_path] = sha
        digests.sizes[f.crate_path] = size
        if f.hash not in known:
            fresh.append((f.hash, sha, size))
    if fresh:
        catalog.sha256_put(fresh)
    return digests


__all__ = ["CrateFile", "Digests", "copy_and_digest", "crate_path", "materialise"]
