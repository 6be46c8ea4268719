"""Catalog writes of the integration, in batches: one filesystem sync, then one transaction.

A Prefect task writes its file and returns; its catalog row (and the stat-cache rows of the
inputs it hashed) queue here and a background thread commits them every ``INTERVAL`` seconds,
after one ``Store.sync`` of the stores written to (DESIGN: bytes are durable before the rows
that vouch for them). ``flush()`` commits what is queued now; it also runs at exit.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

log = logging.getLogger("databacked.integrations.prefect")

INTERVAL = 0.2
"""Seconds between background commits."""

_LOCK = threading.Lock()
_QUEUE: list[tuple[str, str, Any]] = []
"""(catalog URL, kind, payload): kind "call" (store URL, CallRecord), "artifacts"
(store URL, records) or "stat" (rows for the stat cache)."""
_WAKE = threading.Event()
_THREAD: threading.Thread | None = None
_FLUSHING = threading.Lock()


def put(kind: str, payload: Any) -> None:
    """Queue one catalog write for the configured catalog."""
    from databacked.integrations.prefect.context import catalog_url

    global _THREAD  # noqa: PLW0603 - one background thread per process, started lazily
    with _LOCK:
        _QUEUE.append((catalog_url(), kind, payload))
        if _THREAD is None or not _THREAD.is_alive():
            _THREAD = threading.Thread(target=_loop, name="databacked-prefect-catalog", daemon=True)
            _THREAD.start()


def flush() -> None:
    """Commit every queued catalog write now (after syncing the stores written to)."""
    with _FLUSHING:
        with _LOCK:
            batch = list(_QUEUE)
            _QUEUE.clear()
        if batch:
            _commit(batch)


def _loop() -> None:
    while True:
        _WAKE.wait(INTERVAL)
        try:
            flush()
        except Exception:  # a background thread: log, keep the queue going
            log.exception("Recording Prefect task outputs in the catalog failed")


def _commit(batch: list[tuple[str, str, Any]]) -> None:
    from databacked.integrations.prefect.context import catalog, store

    stores = {payload[0] for _, kind, payload in batch if kind in ("call", "artifacts")}
    for url in stores:
        store(url).sync()
    by_catalog: dict[str, list[tuple[str, Any]]] = {}
    for url, kind, payload in batch:
        by_catalog.setdefault(url, []).append((kind, payload))
    for url, items in by_catalog.items():
        cat = catalog(url)
        calls = [payload[1] for kind, payload in items if kind == "call"]
        if calls:
            cat.record_calls(calls)
        for kind, payload in items:
            if kind == "artifacts":
                cat.record_artifacts(payload[0], payload[1])
        stat = [row for kind, payload in items if kind == "stat" for row in payload]
        if stat:
            from databacked.engine.files import LOCAL_FILES

            cat.stat_cache_put(LOCAL_FILES, stat)


atexit.register(flush)

__all__ = ["INTERVAL", "flush", "put"]
