"""Atomic, hashing writers of one file: a stream (``HashingWriter``) and a seekable file
(``SeekableWriter``), each committed by rename or upload (folders: ``folders.py``)."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import uuid
from typing import TYPE_CHECKING, Any

from databacked.crashpoints import crashpoint
from databacked.errors import DatabackedError
from databacked.hashing import StreamHasher, hash_file
from databacked.store.base import _SPOOL_LIMIT, STAGING_PREFIX, WriteResult

if TYPE_CHECKING:
    from databacked.store.core import Store


def _open_staging(store: Store, relpath: str, mode: str) -> tuple[str, Any]:
    """A fresh temporary file beside the target (same filesystem, so the rename is atomic),
    and its name. The folder is made when the open finds it missing: asking first would cost
    every write three more system calls."""
    folder, name = os.path.split(store.full_path(relpath))
    tmp = os.path.join(folder, f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}-{name[:80]}")
    try:
        return tmp, open(tmp, mode)  # closed by the writer
    except FileNotFoundError:
        store._wrap("create the folder of", relpath, os.makedirs, folder, exist_ok=True)
    except OSError:
        pass  # said as a StoreError below, after the store's retries
    return tmp, store._wrap("write", relpath, open, tmp, mode)


def _committed(writer: HashingWriter | SeekableWriter) -> WriteResult:
    """The writer's commit, with a full or failing disk (ENOSPC at close or fsync) said as a
    StoreError; the temporary file is removed by the caller, the old version stays."""
    try:
        return writer._commit()
    except DatabackedError:
        raise
    except OSError as exc:
        raise writer._store._error("write", writer.path, exc) from exc


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
        try:
            crashpoint("store.file.write")
            self._sink.write(view)
        except OSError as exc:  # a full or failing disk: say so, the old version stays
            raise self._store._error("write", self.path, exc) from exc
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
            self._tmp, self._sink = _open_staging(store, self.path, "wb")
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
                self.result = _committed(self)
        finally:
            self._cleanup()
            io.RawIOBase.close(self)

    def _commit(self) -> WriteResult:
        store = self._store
        crashpoint("store.file.staged")
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
            crashpoint("store.file.committed")
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
            self._tmp, self.file = _open_staging(store, self.path, "w+b")
        else:
            import tempfile

            self.file = tempfile.NamedTemporaryFile(prefix=STAGING_PREFIX, delete=False)
            self._tmp = self.file.name
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.result = _committed(self)
            elif isinstance(exc, OSError) and not isinstance(exc, DatabackedError):
                raise self._store._error("write", self.path, exc) from exc
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
        crashpoint("store.file.staged")
        final = store.full_path(self.path)
        store._wrap("write", self.path, os.replace, self._tmp, final)
        self._tmp = None
        store._written(final)
        crashpoint("store.file.committed")
        return WriteResult(self.path, size, digest, store.info(self.path).stamp)
