"""The SQL catalog: runs, calls (the cache), artifacts, lineage edges, stat cache and leases.

``Catalog`` is imported on first use so that ``import databacked`` does not pay for
SQLAlchemy until a catalog is actually opened.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from databacked.catalog.records import (
    ArtifactRow,
    CallRecord,
    CallRow,
    CallStatus,
    InputRef,
    LeaseRow,
    LineageRow,
    RunRow,
)

if TYPE_CHECKING:
    from databacked.catalog.catalog import DEFAULT_URL, Catalog


def __getattr__(name: str) -> Any:
    if name in ("Catalog", "DEFAULT_URL"):
        from databacked.catalog import catalog

        return getattr(catalog, name)
    raise AttributeError(f"module 'databacked.catalog' has no attribute {name!r}")


def fresh_sqlite(catalog: Any) -> bool:
    """Whether ``catalog`` names a SQLite file that does not exist yet: a first run, where
    everything will compute, so workers are worth starting before anything is known. (Read
    off the URL by hand: this is asked before SQLAlchemy is imported.)"""
    if not isinstance(catalog, str | os.PathLike):
        return False
    url = os.fspath(catalog)
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///") :].partition("?")[0]
    elif "://" in url or url.startswith("sqlite:"):
        return False
    return url not in ("", ":memory:") and not os.path.exists(url)


__all__ = [
    "DEFAULT_URL",
    "ArtifactRow",
    "CallRecord",
    "CallRow",
    "CallStatus",
    "Catalog",
    "InputRef",
    "LeaseRow",
    "LineageRow",
    "RunRow",
    "fresh_sqlite",
]
