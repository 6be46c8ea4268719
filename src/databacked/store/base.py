"""What the store's parts share: file records, path helpers, retries, durability syscalls."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from databacked.errors import DatabackedError
from databacked.secrets import redact_text

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
    return redact_text(url)


def _mtime_ns(info: dict[str, Any]) -> int | None:
    for key in ("LastModified", "mtime", "created", "last_modified"):
        value = info.get(key)
        if isinstance(value, dt.datetime):
            return int(value.timestamp() * 1_000_000) * 1000
        if isinstance(value, int | float):
            return int(value * 1_000_000) * 1000
    return None


# --- writers ------------------------------------------------------------------------------


def combined_etag(infos: Iterable[FileInfo]) -> str:
    """One stamp for a directory artifact on an object store, from its files' ETags."""
    from databacked.hashing import combine

    return combine("etags", *sorted(f"{i.path}\0{i.etag}\0{i.size}" for i in infos))


def _fsync_path(path: str) -> None:
    """fsync a file's bytes, or a folder's entries (a rename or a new file in it)."""
    fd = os.open(path, os.O_RDONLY)
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
        _fsync_path(root)


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
