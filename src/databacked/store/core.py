"""The ``Store`` itself: paths, listing, reading, writing and durability over fsspec."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import shutil
import stat
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from databacked.errors import ArtifactNotFound, DatabackedError, PathEscapeError, StoreError
from databacked.hashing import hash_file, hash_fs_path
from databacked.store.base import (
    _BLOCK,
    _T,
    Durability,
    FileInfo,
    WriteResult,
    _fsync_path,
    _mtime_ns,
    _redact,
    _syncfs,
    combined_etag,
    retrying,
)
from databacked.store.folders import (
    OLD_PREFIX,
    WRITING_PREFIX,
    DirectoryWriter,
    interrupted_marker,
    repair_folder,
)
from databacked.store.writers import HashingWriter, SeekableWriter

_SEPARATORS = re.compile(r"[/\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")


@functools.lru_cache(maxsize=8192)
def _normalised(text: str) -> str | None:
    """``text`` as a normalised relative POSIX path, None when it would leave the store.
    (Cached: a call's write asks about the same path several times.)"""
    parts = [p for p in _SEPARATORS.split(text) if p not in ("", ".")]
    if (
        not text
        or "\0" in text
        or text.startswith(("/", "\\"))
        or _DRIVE.match(text) is not None
        or "\\" in text
        or ".." in parts
        or not parts
    ):
        return None
    return "/".join(parts)


FEW_WRITTEN = 32
"""Up to this many files written since the last sync are fsynced one by one (and their folders)
rather than with one filesystem sync, which also writes back everyone else's pending data."""


class Store:
    """A folder or object-store prefix holding artifacts; paths are relative to its root."""

    def __init__(
        self,
        url: str | os.PathLike[str] = "./data",
        *,
        storage_options: dict[str, Any] | None = None,
        durability: Durability = "batch",
    ) -> None:
        if durability not in ("batch", "fsync", "none"):
            raise StoreError(
                f"Unknown durability {durability!r} for store {_redact(os.fspath(url))}: "
                "use 'batch', 'fsync' or 'none'."
            )
        text = os.fspath(url)
        protocol = text.split("://", 1)[0] if "://" in text else "file"
        self.protocol = "file" if protocol in ("file", "local") else protocol
        self.is_local = self.protocol == "file"
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        self.durability: Durability = durability
        if self.is_local:
            local = text.split("://", 1)[1] if "://" in text else text
            self._root = os.path.abspath(os.path.expanduser(local))
            self.url = self._root
        else:
            import fsspec

            try:
                cls = fsspec.get_filesystem_class(self.protocol)
            except (ImportError, ValueError) as exc:
                raise StoreError(
                    f"Cannot open store {_redact(text)}: {exc}; install the matching extra, "
                    "e.g. pip install 'databacked[s3]'."
                ) from exc
            self._root = cls._strip_protocol(text).rstrip("/")
            self.url = _redact(f"{self.protocol}://{self._root.lstrip('/')}".rstrip("/"))
        self._fs: Any = None
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_url(
        cls, url: Store | str | os.PathLike[str], storage_options: dict[str, Any] | None = None
    ) -> Store:
        """An existing Store as is, or a new one for a URL or folder."""
        if isinstance(url, Store):
            return url
        return cls(url, storage_options=storage_options)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Store) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __getstate__(self) -> dict[str, Any]:
        # Travels to workers: the filesystem and lock are rebuilt there.
        state = dict(self.__dict__)
        state.update(_fs=None, _lock=None, _pending=set())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, created on first use."""
        if self._fs is None:
            import fsspec

            self._fs = self._wrap(
                "connect to", "", fsspec.filesystem, self.protocol, **self.storage_options
            )
        return self._fs

    # --- paths -------------------------------------------------------------------------------

    def check_path(self, relpath: str | os.PathLike[str]) -> str:
        """The normalised POSIX relative path, or ``PathEscapeError`` if it leaves the store."""
        text = os.fspath(relpath)
        normal = _normalised(text)
        if normal is None:
            raise PathEscapeError(
                f"Path {text!r} is not allowed in store {self.url}: use a non-empty relative "
                "path inside the store, without '..', backslashes, NUL or a leading '/'."
            )
        return normal

    def full_path(self, relpath: str) -> str:
        """The path on the filesystem: a local absolute path, or ``bucket/prefix/rel``."""
        rel = self.check_path(relpath)
        return os.path.join(self._root, rel) if self.is_local else f"{self._root}/{rel}"

    def uri(self, relpath: str) -> str:
        """What users see: a local absolute path, or ``s3://bucket/prefix/rel``."""
        rel = self.check_path(relpath)
        return os.path.join(self._root, rel) if self.is_local else f"{self.url}/{rel}"

    def local_path(self, relpath: str) -> Path | None:
        return Path(self.full_path(relpath)) if self.is_local else None

    # --- error boundary ------------------------------------------------------------------------

    def _wrap(self, action: str, relpath: str, fn: Callable[..., _T], *args: Any, **kw: Any) -> _T:
        try:
            return retrying(lambda: fn(*args, **kw))
        except DatabackedError:
            raise
        except Exception as exc:
            raise self._error(action, relpath, exc) from exc

    def _error(self, action: str, relpath: str, exc: BaseException) -> DatabackedError:
        """The one-sentence error for a failed store operation (the cause is chained)."""
        where = f"{self.url}/{relpath}" if relpath else self.url
        if isinstance(exc, DatabackedError):
            return exc
        if isinstance(exc, FileNotFoundError):
            return ArtifactNotFound(
                f"No file at {where}: check the path, or run the step that writes it."
            )
        if isinstance(exc, PermissionError):
            return StoreError(
                f"Permission denied to {action} {where}: check access rights or credentials."
            )
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return StoreError(
                f"Could not {action} {where}: {exc.strerror or exc}; free space on the store's "
                "disk and run again (the previous version of the file is intact)."
            )
        if isinstance(exc, OSError) and exc.errno is None and "written" in str(exc):
            # numpy's tofile (tifffile) reports a short write without an errno
            free = _free_bytes(self._root) if self.is_local else None
            return StoreError(
                f"Could not {action} {where}: the disk took only part of the bytes ({exc}; "
                f"{'unknown' if free is None else free} bytes free): free space on the "
                "store's disk and run again (the previous version of the file is intact)."
            )
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            return StoreError(
                f"Could not {action} {where}: input/output error ({exc}); check the disk or "
                "mount, then run again (the previous version of the file is intact)."
            )
        return StoreError(
            f"Could not {action} {where} ({type(exc).__name__}: {exc}); check that the store "
            "is reachable and retry."
        )

    # --- reading -------------------------------------------------------------------------------

    def exists(self, relpath: str) -> bool:
        full = self.full_path(relpath)
        if self.is_local:
            return os.path.lexists(full)
        self.fs.invalidate_cache(full)
        return bool(self._wrap("check", relpath, self.fs.exists, full))

    def info(self, relpath: str) -> FileInfo:
        """Size and stamp of a file, or of a directory artifact (sum of sizes, newest mtime)."""
        rel = self.check_path(relpath)
        full = self.full_path(rel)
        if self.is_local:
            try:
                st = self._wrap("stat", rel, os.stat, full)
            except ArtifactNotFound:
                # A folder swap killed half-way: put the previous version back, then read it.
                if repair_folder(self, rel) is None:
                    raise
                st = self._wrap("stat", rel, os.stat, full)
            if stat.S_ISDIR(st.st_mode):
                infos = list(self.list(rel))
                newest = max([i.mtime_ns or 0 for i in infos], default=st.st_mtime_ns)
                return FileInfo(rel, sum(i.size for i in infos), newest, None, st.st_ino)
            return FileInfo(rel, st.st_size, st.st_mtime_ns, None, st.st_ino)
        self.fs.invalidate_cache(full)
        try:
            raw = self._wrap("stat", rel, self.fs.info, full)
        except ArtifactNotFound:
            self._refuse_interrupted(rel)
            raise
        if raw.get("type") == "directory":
            self._refuse_interrupted(rel)
            infos = list(self.list(rel))
            if not infos:
                raise ArtifactNotFound(f"No file at {self.url}/{rel}: the folder is empty.")
            size = sum(i.size for i in infos)
            if all(i.etag for i in infos):
                return FileInfo(rel, size, None, combined_etag(infos), None)
            return FileInfo(rel, size, max(i.mtime_ns or 0 for i in infos), None, None)
        return self._remote_info(rel, raw)

    def _refuse_interrupted(self, rel: str) -> None:
        """A folder whose replacement was killed half-way counts as missing (object stores)."""
        if interrupted_marker(self, rel) is not None:
            raise ArtifactNotFound(
                f"The folder {self.url}/{rel} is incomplete: a write of it was interrupted; "
                "run the step again, or repair it with `databacked verify --repair`."
            )

    def _remote_info(self, rel: str, raw: dict[str, Any]) -> FileInfo:
        etag = raw.get("ETag") or raw.get("etag")
        etag = str(etag).strip('"') if etag else None
        return FileInfo(rel, int(raw.get("size") or 0), _mtime_ns(raw), etag, None)

    def infos(self, relpaths: Iterable[str]) -> dict[str, FileInfo | None]:
        """Stat many paths; on object stores one listing per folder. Missing -> None."""
        rels = [self.check_path(p) for p in relpaths]
        out: dict[str, FileInfo | None] = {}
        if self.is_local:
            head = self._root.rstrip(os.sep) + os.sep  # concatenation: join per path costs
            for rel in rels:
                try:
                    st = os.stat(head + rel)
                except (FileNotFoundError, NotADirectoryError):
                    folder, _, name = (head + rel).rpartition("/")
                    aside = f"{folder}/{OLD_PREFIX}{name}"  # a folder swap killed half-way
                    out[rel] = self.info(rel) if os.path.lexists(aside) else None
                    continue
                if stat.S_ISDIR(st.st_mode):
                    out[rel] = self.info(rel)
                else:
                    out[rel] = FileInfo(rel, st.st_size, st.st_mtime_ns, None, st.st_ino)
            return out
        by_folder: dict[str, list[str]] = {}
        for rel in rels:
            by_folder.setdefault(rel.rpartition("/")[0], []).append(rel)
        for folder, members in by_folder.items():
            full = f"{self._root}/{folder}" if folder else self._root
            try:
                listing = self._wrap("list", folder, self.fs.ls, full, detail=True, refresh=True)
            except ArtifactNotFound:
                listing = []
            found = {str(e["name"]).rstrip("/"): e for e in listing}
            for rel in members:
                full = self.full_path(rel)
                entry = found.get(full)
                head, _, name = full.rpartition("/")
                if entry is None or f"{head}/{WRITING_PREFIX}{name}" in found:
                    out[rel] = None
                elif entry.get("type") == "directory":
                    out[rel] = self.info(rel)
                else:
                    out[rel] = self._remote_info(rel, entry)
        return out

    def list(self, prefix: str = "") -> Iterator[FileInfo]:
        """Every file under ``prefix`` (recursive), with paths relative to the store root."""
        base = self.full_path(prefix) if prefix else self._root
        if self.is_local:
            yield from self._list_local(base)
            return
        self.fs.invalidate_cache(base)
        try:
            found = self._wrap("list", prefix, self.fs.find, base, detail=True)
        except ArtifactNotFound:
            return
        root = self._root.rstrip("/") + "/"
        for name, entry in sorted(found.items()):
            if entry.get("type") != "directory" and name.startswith(root):
                yield self._remote_info(name[len(root) :], entry)

    def _list_local(self, base: str) -> Iterator[FileInfo]:
        """Files under a local folder, top-down like ``os.walk`` (symlinked folders are not
        followed). Listings of 100,000 files are on the no-op path of every spec run, so this
        uses ``os.scandir`` and slices the root off each path (``os.path.relpath`` per file
        dominated the listing)."""
        cut = len(self._root.rstrip(os.sep)) + 1
        posix = os.sep == "/"
        folders = [base]
        while folders:
            folder = folders.pop()
            try:
                with os.scandir(folder) as entries:
                    found = list(entries)
            except OSError:  # removed while listing, not a folder, or unreadable: as os.walk
                continue
            subfolders = []
            for entry in found:
                try:
                    if entry.is_dir():
                        if not entry.is_symlink():
                            subfolders.append(entry.path)
                        continue
                    st = entry.stat()  # follows a symlinked file, as os.stat did
                except OSError:  # removed while listing, or a dangling link
                    continue
                rel = entry.path[cut:] if posix else entry.path[cut:].replace(os.sep, "/")
                yield FileInfo(rel, st.st_size, st.st_mtime_ns, None, st.st_ino)
            folders.extend(reversed(subfolders))

    def open(self, relpath: str, mode: str = "rb") -> BinaryIO:
        """A read-only file object; use ``writer`` to write."""
        if "r" not in mode or any(c in mode for c in "wa+x"):
            raise StoreError(
                f"Store.open is read-only (mode {mode!r} for {self.url}/{relpath}): "
                "use store.writer() to write atomically."
            )
        full = self.full_path(relpath)
        opener = open if self.is_local else self.fs.open
        return self._wrap("open", relpath, opener, full, "rb")

    def read_bytes(self, relpath: str) -> bytes:
        full = self.full_path(relpath)
        if self.is_local:
            return self._wrap("read", relpath, Path(full).read_bytes)
        return self._wrap("read", relpath, self.fs.cat_file, full)

    def hash(self, relpath: str) -> str:
        """Re-hash the content of a file or directory artifact by reading it."""
        full = self.full_path(relpath)
        if self.is_local:
            return self._wrap("hash", relpath, hash_file, full)
        self.fs.invalidate_cache(full)
        return self._wrap("hash", relpath, hash_fs_path, self.fs, full)

    # --- writing -------------------------------------------------------------------------------

    def writer(self, relpath: str) -> HashingWriter:
        """An atomic, hashing writer: ``with store.writer(p) as f: f.write(...)``; ``f.result``."""
        return HashingWriter(self, self.check_path(relpath))

    def seekable_writer(self, relpath: str) -> SeekableWriter:
        """A real, seekable temporary file committed atomically: ``.file`` inside the block."""
        return SeekableWriter(self, self.check_path(relpath))

    def put_bytes(self, relpath: str, data: bytes | bytearray | memoryview) -> WriteResult:
        with self.writer(relpath) as out:
            out.write(data)
        assert out.result is not None
        return out.result

    def put_file(self, relpath: str, local_file: str | os.PathLike[str]) -> WriteResult:
        """Copy a local file into the store (hashing it on the way)."""
        src = self._wrap("read", str(local_file), open, local_file, "rb")
        with src, self.writer(relpath) as out:
            while block := src.read(_BLOCK):
                out.write(block)
        assert out.result is not None
        return out.result

    def directory_writer(self, relpath: str) -> DirectoryWriter:
        """Write a folder (Zarr) atomically where possible; ``.result`` holds its Merkle hash."""
        return DirectoryWriter(self, self.check_path(relpath))

    def delete(self, relpath: str) -> None:
        """Remove a file or directory; a missing one is fine."""
        full = self.full_path(relpath)
        if self.is_local:
            if os.path.isdir(full) and not os.path.islink(full):
                self._wrap("delete", relpath, shutil.rmtree, full)
            else:
                with contextlib.suppress(ArtifactNotFound):
                    self._wrap("delete", relpath, os.unlink, full)
            return
        with contextlib.suppress(ArtifactNotFound):
            self._wrap("delete", relpath, self.fs.rm, full, recursive=True)
        self.fs.invalidate_cache(full)

    # --- durability ----------------------------------------------------------------------------

    def _written(self, final: str) -> None:
        if self.durability == "fsync":
            _fsync_path(os.path.dirname(final))
        elif self.durability == "batch":
            with self._lock:
                self._pending.add(final)

    @property
    def pending(self) -> frozenset[str]:
        """Local paths written since the last ``sync()`` (durability "batch")."""
        with self._lock:
            return frozenset(self._pending)

    def sync(self, written: Collection[str] | None = None) -> None:
        """Make every write since the last call durable (one filesystem sync, or an fsync
        of each of a few files known to be ``written``).

        Under "batch" the sync runs even when this process wrote nothing: workers in other
        processes wrote through their own copy of the store, and the driver calls this once
        per commit batch before the catalog rows that vouch for those files. Given the
        store paths ``written`` and few of them, each file and its folders up to the root are
        fsynced instead: a filesystem sync also writes back everything else waiting on that
        disk (a copy someone else just made), tens of milliseconds to seconds.
        """
        with self._lock:
            self._pending = set()
        if self.durability != "batch" or not self.is_local or not os.path.isdir(self._root):
            return
        if written is not None and len(written) <= FEW_WRITTEN and self._fsync_each(written):
            return
        _syncfs(self._root)

    def _fsync_each(self, written: Collection[str]) -> bool:
        """fsync these files and their folders; False (nothing promised) for a folder output
        or any error, which the filesystem sync then covers."""
        try:
            files = {path: self.full_path(path) for path in written}
            if not all(os.path.isfile(full) for full in files.values()):
                return False  # a folder (OME-Zarr): the filesystem sync covers its tree
            folders = {self._root}  # a folder made for a file is an entry in its parent
            for path, full in files.items():
                _fsync_path(full)
                folders.update(self.full_path(str(p)) for p in PurePosixPath(path).parents[:-1])
            for folder in folders:
                _fsync_path(folder)
        except (OSError, DatabackedError):
            return False
        return True


def _free_bytes(folder: str) -> int | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
