"""``CatalogLockManager``: Prefect's lock manager, shared by every process using one catalog.

Prefect's ``SERIALIZABLE`` transactions lock a cache key before checking for its record, so
a second flow waits for the first and then finds the result instead of computing it again.
With a PostgreSQL or MariaDB catalog the locks are the catalog's lease rows (the ones
databacked's own drivers take), so they hold across machines. A SQLite catalog lives on one
host, so there the locks are lock files beside it (created exclusively: far cheaper than a
write transaction per task). Either way a lock whose holder process died on this host is
broken at once; a lease held elsewhere expires after its time-to-live.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from databacked.engine.journal import pid_alive

POLL = 0.05
"""Seconds between looks at a lock held by another process."""
DEFAULT_TTL = 6 * 3600.0
"""Lease length when Prefect gives no hold timeout (a dead holder's lease lasts this long)."""


@dataclass
class CatalogLockManager:
    """Locks on cache keys for the catalog ``catalog_url`` (None: the configured one)."""

    catalog_url: str | None = None
    _held: set[tuple[str, str]] = field(default_factory=set, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._mutex = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"catalog_url": self.catalog_url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.catalog_url = state["catalog_url"]
        self._held = set()
        self._mutex = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> CatalogLockManager:
        return CatalogLockManager(self.catalog_url)

    # -- where the locks live ------------------------------------------------------------

    def _url(self) -> str:
        from databacked.integrations.prefect.context import catalog_url

        return self.catalog_url or catalog_url()

    def _lock_dir(self) -> Path | None:
        """The lock-file folder of a SQLite catalog; None for a server catalog."""
        url = self._url()
        if not url.startswith("sqlite"):
            return None
        database = url.split(":///", 1)[1] if ":///" in url else ""
        if not database or database.startswith(":memory:"):
            return Path.cwd() / ".databacked" / "prefect-locks"
        return Path(database + ".prefect-locks")

    @staticmethod
    def _owner(holder: str) -> str:
        return f"prefect:{holder}"

    # -- the LockManager protocol --------------------------------------------------------

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        folder = self._lock_dir()
        while True:
            if folder is not None:
                taken = _FileLocks(folder).take(key, self._owner(holder))
            else:
                cat = self._catalog()
                taken = key in cat.acquire([key], self._owner(holder), hold_timeout or DEFAULT_TTL)
            if taken:
                with self._mutex:
                    self._held.add((key, holder))
                return True
            self._break_dead(key)
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        return await asyncio.to_thread(
            self.acquire_lock, key, holder, acquire_timeout, hold_timeout
        )

    def release_lock(self, key: str, holder: str) -> None:
        with self._mutex:
            self._held.discard((key, holder))
        folder = self._lock_dir()
        if folder is not None:
            _FileLocks(folder).drop(key, self._owner(holder))
        else:
            self._catalog().release([key], self._owner(holder))

    def is_locked(self, key: str) -> bool:
        return self._holder_of(key) is not None

    def is_lock_holder(self, key: str, holder: str) -> bool:
        with self._mutex:
            if (key, holder) in self._held:
                return True
        found = self._holder_of(key)
        return found is not None and found[0] == self._owner(holder)

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._holder_of(key) is not None:
            self._break_dead(key)
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL)
        return True

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.wait_for_lock, key, timeout)

    # -- helpers -------------------------------------------------------------------------

    def _catalog(self) -> Any:
        from databacked.integrations.prefect.context import catalog

        return catalog(self.catalog_url)

    def _holder_of(self, key: str) -> tuple[str, str, int | None] | None:
        """(owner, host, pid) of the live lock on ``key``, or None."""
        folder = self._lock_dir()
        if folder is not None:
            return _FileLocks(folder).holder(key)
        lease = self._catalog().leases_of_others([key]).get(key)
        return None if lease is None else (lease.owner, lease.host, lease.pid)

    def _break_dead(self, key: str) -> None:
        """Release a lock whose holder process on this host is gone."""
        found = self._holder_of(key)
        if found is None:
            return
        owner, host, pid = found
        if host != socket.gethostname() or not pid or pid_alive(pid):
            return
        folder = self._lock_dir()
        if folder is not None:
            _FileLocks(folder).drop(key, owner)
        else:
            self._catalog().release([key], owner)


class _FileLocks:
    """One exclusively created file per locked key: ``<owner>\\n<host>\\n<pid>``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        # keys are hex digests here, but any text is made a safe file name
        safe = key.isalnum() and len(key) <= 128
        name = key if safe else hashlib.sha256(key.encode()).hexdigest()
        return self.folder / f"{name}.lock"

    def take(self, key: str, owner: str) -> bool:
        path = self._path(key)
        text = f"{owner}\n{socket.gethostname()}\n{os.getpid()}\n".encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            self.folder.mkdir(parents=True, exist_ok=True)
            return self.take(key, owner)
        except FileExistsError:
            return self.holder(key) is not None and self.holder(key)[0] == owner  # type: ignore[index]
        try:
            os.write(fd, text)
        finally:
            os.close(fd)
        return True

    def holder(self, key: str) -> tuple[str, str, int | None] | None:
        try:
            lines = self._path(key).read_text().splitlines()
        except FileNotFoundError:
            return None
        if len(lines) < 3:  # being written right now: held
            return ("", "", None)
        return lines[0], lines[1], int(lines[2]) if lines[2].isdigit() else None

    def drop(self, key: str, owner: str) -> None:
        found = self.holder(key)
        if found is not None and found[0] == owner:
            self._path(key).unlink(missing_ok=True)


__all__ = ["CatalogLockManager"]
