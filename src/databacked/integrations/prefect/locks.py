"""``CatalogLockManager``: Prefect's lock manager on databacked's catalog leases.

Prefect's ``SERIALIZABLE`` transactions lock a cache key before checking for its record, so
a second flow waits for the first and then finds the result instead of computing it again.
The locks are the catalog's lease rows (the same ones databacked's own drivers take), so they
hold across processes and, on PostgreSQL or MariaDB, across machines. A lease whose holder
died on this host is broken at once; elsewhere it expires after its time-to-live.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

POLL = 0.05
"""Seconds between looks at a lease held by another process."""
DEFAULT_TTL = 6 * 3600.0
"""Lease length when Prefect gives no hold timeout (a dead holder's lease lasts this long)."""


@dataclass
class CatalogLockManager:
    """Locks on cache keys as catalog leases; ``catalog_url=None`` uses the configured one."""

    catalog_url: str | None = None

    def _catalog(self) -> Any:
        from databacked.integrations.prefect.context import catalog

        return catalog(self.catalog_url)

    @staticmethod
    def _owner(holder: str) -> str:
        return f"prefect:{holder}"

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        cat = self._catalog()
        owner = self._owner(holder)
        ttl = hold_timeout or DEFAULT_TTL
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        while True:
            if key in cat.acquire([key], owner, ttl):
                return True
            self._break_dead(cat, key)
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
        self._catalog().release([key], self._owner(holder))

    def is_locked(self, key: str) -> bool:
        return bool(self._catalog().leases_of_others([key]))

    def is_lock_holder(self, key: str, holder: str) -> bool:
        cat = self._catalog()
        owner = self._owner(holder)
        held = cat.leases_of_others([key])
        return key in held and held[key].owner == owner

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        cat = self._catalog()
        deadline = None if timeout is None else time.monotonic() + timeout
        while cat.leases_of_others([key]):
            self._break_dead(cat, key)
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL)
        return True

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.wait_for_lock, key, timeout)

    @staticmethod
    def _break_dead(cat: Any, key: str) -> None:
        """Release a lease whose holder process on this host is gone."""
        lease = cat.leases_of_others([key]).get(key)
        if lease is None or lease.host != socket.gethostname() or not lease.pid:
            return
        try:
            os.kill(lease.pid, 0)
        except ProcessLookupError:
            cat.release([key], lease.owner)
        except PermissionError:
            return


__all__ = ["CatalogLockManager"]
