"""Where artifact bytes live: a local folder or any fsspec URL, with atomic hashed writes.

A ``Store`` is rooted at a folder (``./data``) or an object-store prefix
(``s3://bucket/prefix``); every path given to it is relative to that root and checked
(``check_path``). Writes are atomic -- locally a ``.databacked-tmp-*`` file renamed into
place, on S3 one PUT or one completed multipart upload -- and hash their bytes while they
stream out. Transient errors are retried with exponential back-off; everything else becomes
a ``StoreError`` naming the store and the path.

Example::

    store = Store("./data")
    with store.writer("tables/a.csv") as out:
        out.write(b"x,y\\n1,2\\n")
    out.result.hash   # blake3 of exactly those bytes

On object stores, ``directory_writer`` (Zarr) writes under the final prefix directly: a failed
write is cleaned up, but readers may see a partial folder while it runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import re
import shutil
import stat
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar

from databacked.errors import ArtifactNotFound, DatabackedError, PathEscapeError, StoreError
from databacked.hashing import StreamHasher, hash_file, hash_fs_path

Durability = Literal["batch", "fsync", "none"]
STAGING_PREFIX = ".databacked-tmp-"
_BLOCK = 8 * 1024 * 1024
# Writes to object stores are spooled in memory up to this size and sent as one PUT;
# larger ones spill to a local temporary file and go up as a multipart upload.
_SPOOL_LIMIT = 32 * 1024 * 1024
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What a listing or a stat says about one file (or one directory artifact)."""

    path: str
    """Relative to the store root, POSIX separators."""
    size: int
    mtime_ns: int | None
    etag: str | None
    inode: int | None

    @property
    def stamp(self) -> str:
        """Changes whenever the bytes may have: ``e:<etag>`` or ``m:<mtime_ns>:<inode>``."""
        if self.etag:
            return f"e:{self.etag}"
        return f"m:{self.mtime_ns}:{self.inode if self.inode is not None else ''}"


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What an atomic write produced: where, how big, its content hash and its stamp."""

    path: str
    size: int
    hash: str
    stamp: str


# --- retries and error translation --------------------------------------------------------

_TRANSIENT_NAMES = {
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "HTTPClientError",
    "ClientConnectionError",
    "ServerDisconnectedError",
    "ClientPayloadError",
}
_TRANSIENT_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "503"}


def is_transient(exc: BaseException) -> bool:
    """Whether an error may go away by itself (network, throttling, 5xx), so a retry helps."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, FileNotFoundError | PermissionError | DatabackedError):
            return False
        if isinstance(cur, ConnectionError | TimeoutError):
            return True
        if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(cur).__mro__):
            return True
        response = getattr(cur, "response", None)
        if isinstance(response, dict):
            error = response.get("Error", {})
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if error.get("Code") in _TRANSIENT_CODES or int(status or 0) >= 500:
                return True
        cur = cur.__cause__ or cur.__context__
    return False


def retrying(fn: Callable[[], _T], *, attempts: int = 5, max_wait: float = 4.0) -> _T:
    """Call ``fn``, retrying transient errors with exponential back-off."""
    # The first attempt runs bare: building a tenacity.Retrying costs more than a local stat,
    # and a no-op rerun stats every output.
    try:
        return fn()
    except Exception as exc:
        if not is_transient(exc) or attempts <= 1:
            raise
    import tenacity

    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_attempt(attempts - 1),
        wait=tenacity.wait_exponential(multiplier=0.1, max=max_wait),
        reraise=True,
    )
    return retryer(fn)


def _redact(url: str) -> str:
    # user:secret@host in a URL must never reach a message or a log.
    return re.sub(r"://[^/@]*@", "://***@", url)


def _mtime_ns(info: dict[str, Any]) -> int | None:
    for key in ("LastModified", "mtime", "created", "last_modified"):
        value = info.get(key)
        if isinstance(value, dt.datetime):
            return int(value.timestamp() * 1_000_000) * 1000
        if isinstance(value, int | float):
            return int(value * 1_000_000) * 1000
    return None


# --- writers ------------------------------------------------------------------------------


def _staging_file(store: Store, relpath: str) -> str:
    """A fresh temporary name beside the target (same filesystem, so the rename is atomic)."""
    folder, name = os.path.split(store.full_path(relpath))
    store._wrap("create the folder of", relpath, os.makedirs, folder, exist_ok=True)
    return os.path.join(folder, f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}-{name[:80]}")


class HashingWriter(io.RawIOBase):
    """A write-only file object that hashes bytes on their way out; ``.result`` after exit."""

    def __init__(self, store: Store, relpath: str) -> None:
        super().__init__()
        self._store = store
        self.path = relpath
        self._hasher = StreamHasher()
        self._sink: Any = None
        self._tmp: str | None = None
        self.result: WriteResult | None = None

    # file-object protocol
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._sink.write(view)
        self._hasher.update(view)
        if isinstance(self._sink, io.BytesIO) and self._hasher.size > _SPOOL_LIMIT:
            self._spill()
        return view.nbytes

    def tell(self) -> int:
        return self._hasher.size

    # context manager: open the temporary target, then commit or clean up
    def __enter__(self) -> HashingWriter:
        store = self._store
        if store.is_local:
            self._tmp = _staging_file(store, self.path)
            self._sink = store._wrap("write", self.path, open, self._tmp, "wb")
        else:
            self._sink = io.BytesIO()
        return self

    def _spill(self) -> None:
        import tempfile

        spool = tempfile.NamedTemporaryFile(prefix=STAGING_PREFIX, delete=False)  # noqa: SIM115
        spool.write(self._sink.getbuffer())
        self._sink = spool
        self._tmp = spool.name

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.result = self._commit()
        finally:
            self._cleanup()
            io.RawIOBase.close(self)

    def _commit(self) -> WriteResult:
        store = self._store
        if store.is_local:
            assert self._tmp is not None
            self._sink.flush()
            if store.durability == "fsync":
                os.fsync(self._sink.fileno())
            self._sink.close()
            final = store.full_path(self.path)
            store._wrap("write", self.path, os.replace, self._tmp, final)
            self._tmp = None
            store._written(final)
        elif isinstance(self._sink, io.BytesIO):
            data = self._sink.getvalue()
            store._wrap("upload", self.path, store.fs.pipe_file, store.full_path(self.path), data)
        else:
            self._sink.close()
            store._wrap(
                "upload", self.path, store.fs.put_file, self._tmp, store.full_path(self.path)
            )
        info = store.info(self.path)
        return WriteResult(self.path, self._hasher.size, self._hasher.hexdigest(), info.stamp)

    def _cleanup(self) -> None:
        with contextlib.suppress(Exception):
            if self._sink is not None and not self._sink.closed:
                self._sink.close()
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None


_EARLY_FLUSH = 64 * 1024 * 1024


class SeekableWriter:
    """A real temporary file for libraries that seek back while writing (tifffile).

    Such bytes cannot be hashed as they stream out (earlier bytes are patched later), so the
    finished file is hashed once, memory-mapped on all threads while it is still in the page
    cache, then renamed into place (local) or uploaded (object stores, hashed on the way).
    ``.file`` is the open binary file; ``.result`` holds the WriteResult after exit.
    """

    def __init__(self, store: Store, relpath: str) -> None:
        self._store = store
        self.path = relpath
        self.file: Any = None
        self._tmp: str | None = None
        self.result: WriteResult | None = None

    def __enter__(self) -> SeekableWriter:
        store = self._store
        if store.is_local:
            self._tmp = _staging_file(store, self.path)
            self.file = store._wrap("write", self.path, open, self._tmp, "w+b")
        else:
            import tempfile

            self.file = tempfile.NamedTemporaryFile(prefix=STAGING_PREFIX, delete=False)
            self._tmp = self.file.name
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.result = self._commit()
        finally:
            with contextlib.suppress(Exception):
                if self.file is not None and not self.file.closed:
                    self.file.close()
            if self._tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._tmp)
                self._tmp = None

    def _commit(self) -> WriteResult:
        store = self._store
        assert self._tmp is not None
        self.file.flush()
        if not store.is_local:
            self.file.close()
            return store.put_file(self.path, self._tmp)
        size = os.fstat(self.file.fileno()).st_size
        if store.durability == "fsync":
            os.fsync(self.file.fileno())
            digest = hash_file(self._tmp)
        elif store.durability == "batch" and size >= _EARLY_FLUSH:
            # A big file is read back for its hash anyway: flush it to disk meanwhile, so the
            # batch's one sync later finds little left to write (hash and disk overlap).
            flush = threading.Thread(target=os.fdatasync, args=(self.file.fileno(),))
            flush.start()
            digest = hash_file(self._tmp)
            flush.join()
        else:
            digest = hash_file(self._tmp)
        self.file.close()
        final = store.full_path(self.path)
        store._wrap("write", self.path, os.replace, self._tmp, final)
        self._tmp = None
        store._written(final)
        return WriteResult(self.path, size, digest, store.info(self.path).stamp)


class DirectoryWriter:
    """Where a directory artifact (Zarr) is written: ``.path`` plus ``storage_options``."""

    def __init__(self, store: Store, relpath: str) -> None:
        self._store = store
        self.relpath = relpath
        self.storage_options = dict(store.storage_options) if not store.is_local else None
        if store.is_local:
            final = store.full_path(relpath)
            folder, name = os.path.split(final)
            self.path = os.path.join(folder, f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}-{name[:80]}")
        else:
            # Not store.uri(): that one is redacted for display, this one must open.
            self.path = f"{store.protocol}://{store.full_path(relpath).lstrip('/')}"
        self.result: WriteResult | None = None

    @property
    def mapper(self) -> Any:
        """An fsspec mapping over the folder (for libraries that take a MutableMapping)."""
        import fsspec

        return fsspec.get_mapper(self.path, **(self.storage_options or {}))

    @property
    def store(self) -> Any:
        """A zarr v3 store over the folder."""
        import zarr.storage

        if self._store.is_local:
            return zarr.storage.LocalStore(self.path)
        return zarr.storage.FsspecStore.from_url(self.path, storage_options=self.storage_options)

    def __enter__(self) -> DirectoryWriter:
        store = self._store
        if store.is_local:
            store._wrap("create", self.relpath, os.makedirs, self.path)
        else:
            # Stale chunks of an earlier version must not survive into the new one.
            store.delete(self.relpath)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        store = self._store
        if exc_type is not None:
            with contextlib.suppress(Exception):
                if store.is_local:
                    shutil.rmtree(self.path, ignore_errors=True)
                else:
                    store.delete(self.relpath)
            return
        if store.is_local:
            final = store.full_path(self.relpath)
            if store.durability == "fsync":
                _fsync_tree(self.path)
            if os.path.lexists(final):
                old = f"{self.path}-old"
                store._wrap("replace", self.relpath, os.rename, final, old)
                os.rename(self.path, final)
                store._wrap("delete", self.relpath, shutil.rmtree, old, ignore_errors=True)
            else:
                store._wrap("write", self.relpath, os.rename, self.path, final)
            store._written(final)
        info = store.info(self.relpath)
        self.result = WriteResult(self.relpath, info.size, store.hash(self.relpath), info.stamp)


# --- the store ----------------------------------------------------------------------------


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
        parts = [p for p in re.split(r"[/\\]", text) if p not in ("", ".")]
        bad = (
            not text
            or "\0" in text
            or text.startswith(("/", "\\"))
            or re.match(r"^[A-Za-z]:", text) is not None
            or "\\" in text
            or ".." in parts
            or not parts
        )
        if bad:
            raise PathEscapeError(
                f"Path {text!r} is not allowed in store {self.url}: use a non-empty relative "
                "path inside the store, without '..', backslashes, NUL or a leading '/'."
            )
        return "/".join(parts)

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
        where = f"{self.url}/{relpath}" if relpath else self.url
        try:
            return retrying(lambda: fn(*args, **kw))
        except DatabackedError:
            raise
        except FileNotFoundError as exc:
            raise ArtifactNotFound(
                f"No file at {where}: check the path, or run the step that writes it."
            ) from exc
        except PermissionError as exc:
            raise StoreError(
                f"Permission denied to {action} {where}: check access rights or credentials."
            ) from exc
        except Exception as exc:
            raise StoreError(
                f"Could not {action} {where} ({type(exc).__name__}: {exc}); check that the store "
                "is reachable and retry."
            ) from exc

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
            st = self._wrap("stat", rel, os.stat, full)
            if stat.S_ISDIR(st.st_mode):
                infos = list(self.list(rel))
                newest = max([i.mtime_ns or 0 for i in infos], default=st.st_mtime_ns)
                return FileInfo(rel, sum(i.size for i in infos), newest, None, st.st_ino)
            return FileInfo(rel, st.st_size, st.st_mtime_ns, None, st.st_ino)
        self.fs.invalidate_cache(full)
        raw = self._wrap("stat", rel, self.fs.info, full)
        if raw.get("type") == "directory":
            infos = list(self.list(rel))
            if not infos:
                raise ArtifactNotFound(f"No file at {self.url}/{rel}: the folder is empty.")
            size = sum(i.size for i in infos)
            if all(i.etag for i in infos):
                return FileInfo(rel, size, None, combined_etag(infos), None)
            return FileInfo(rel, size, max(i.mtime_ns or 0 for i in infos), None, None)
        return self._remote_info(rel, raw)

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
                    out[rel] = None
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
                entry = found.get(self.full_path(rel))
                if entry is None:
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
            _fsync_dir(os.path.dirname(final))
        elif self.durability == "batch":
            with self._lock:
                self._pending.add(final)

    @property
    def pending(self) -> frozenset[str]:
        """Local paths written since the last ``sync()`` (durability "batch")."""
        with self._lock:
            return frozenset(self._pending)

    def sync(self) -> None:
        """Make every write since the last call durable with one filesystem sync.

        Under "batch" the sync runs even when this process wrote nothing: workers in other
        processes wrote through their own copy of the store, and the driver calls this once
        per commit batch before the catalog rows that vouch for those files.
        """
        with self._lock:
            self._pending = set()
        if self.durability == "batch" and self.is_local and os.path.isdir(self._root):
            _syncfs(self._root)


def combined_etag(infos: Iterable[FileInfo]) -> str:
    """One stamp for a directory artifact on an object store, from its files' ETags."""
    from databacked.hashing import combine

    return combine("etags", *sorted(f"{i.path}\0{i.etag}\0{i.size}" for i in infos))


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: str) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(root)


def _syncfs(folder: str) -> None:
    # syncfs flushes only the store's filesystem; os.sync is the portable fallback.
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(folder, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()


__all__ = ["STAGING_PREFIX", "DirectoryWriter", "FileInfo", "HashingWriter", "Store", "WriteResult"]
