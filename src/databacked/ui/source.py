"""What the UI reads from: the catalog opened read-only, and the stores its artifacts live in.

The catalog is opened through ``Catalog.open`` (the one way to open a catalog) with a URL that
makes the connection read-only where the database allows: SQLite ``mode=ro``, PostgreSQL
``default_transaction_read_only``, MariaDB/MySQL ``SET SESSION TRANSACTION READ ONLY``. Bytes
are only ever served for a catalog row (found by content hash), from a store the UI was given.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from databacked.errors import CatalogError, ConfigError

if TYPE_CHECKING:
    from databacked.catalog import Catalog
    from databacked.store import Store

log = logging.getLogger("databacked.ui")


def readonly_url(url: str) -> str:
    """The catalog URL with the database's own read-only switch; ConfigError if missing."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if "://" not in url:
        url = f"sqlite:///{Path(url).resolve()}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # Catalog.open reports a malformed URL in its own words
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            return url
        path = Path(database).expanduser().resolve()
        if not path.exists():
            raise ConfigError(
                f"No catalog at {path} yet: run a pipeline first, or point --catalog (or "
                "DATABACKED_CATALOG) at an existing one."
            )
        return f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true"
    if backend == "postgresql":
        return parsed.update_query_dict(
            {"options": "-c default_transaction_read_only=on"}
        ).render_as_string(hide_password=False)
    if backend in ("mysql", "mariadb") and parsed.get_driver_name() == "pymysql":
        return parsed.update_query_dict(
            {"init_command": "SET SESSION TRANSACTION READ ONLY"}
        ).render_as_string(hide_password=False)
    return url


def open_catalog(url: str) -> Catalog:
    """The catalog at ``url``, opened read-only where the database allows."""
    from databacked.catalog import Catalog

    try:
        return Catalog.open(readonly_url(url))
    except CatalogError as exc:
        if "migrate" not in str(exc):
            raise
        raise CatalogError(
            "The catalog has an older schema and the UI opens it read-only, so it cannot "
            "migrate it: run `databacked status` once with this catalog, then start the UI."
        ) from exc


class Source:
    """The catalog and the stores the UI may read; ``stores=None`` trusts the catalog's own."""

    def __init__(
        self,
        catalog: Catalog,
        stores: list[str] | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.catalog = catalog
        self.allowed = None if stores is None else {_normal(s) for s in stores}
        self.storage_options = storage_options or None
        self._stores: dict[str, Store] = {}
        self._lock = threading.Lock()

    def store(self, url: str | None) -> Store | None:
        """The Store for a catalog row's store URL, or None when the UI may not read it."""
        from databacked.store import Store

        if not url or url == "file://":
            return None
        key = _normal(url)
        if self.allowed is not None and key not in self.allowed:
            return None
        with self._lock:
            if key not in self._stores:
                try:
                    self._stores[key] = Store(url, storage_options=self.storage_options)
                except Exception as exc:  # a store we cannot open is one we do not serve
                    log.warning("cannot open store %s: %s", url, exc)
                    return None
            return self._stores[key]

    def close(self) -> None:
        self.catalog.close()


def _normal(url: str) -> str:
    if "://" in url:
        return url.rstrip("/")
    return str(Path(url).expanduser().resolve())


__all__ = ["Source", "open_catalog", "readonly_url"]
