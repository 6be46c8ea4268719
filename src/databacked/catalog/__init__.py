"""The SQL catalog: runs, calls (the cache), artifacts, lineage edges, stat cache and leases.

``Catalog`` is imported on first use so that ``import databacked`` does not pay for
SQLAlchemy until a catalog is actually opened.
"""

from __future__ import annotations

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
]
