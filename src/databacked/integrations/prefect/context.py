"""Where the Prefect integration keeps things: the catalog, the stores, Prefect's records.

Prefect runs tasks in threads, Dask workers or other processes, so the settings live in the
environment (``DATABACKED_CATALOG``, ``DATABACKED_STORE``) where child processes see them;
``configure`` sets them for this process and its children.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from databacked.store import Store

if TYPE_CHECKING:
    from databacked.catalog import Catalog

_LOCK = threading.Lock()
_CATALOGS: dict[str, Catalog] = {}
_STORES: dict[str, Store] = {}
RECORDS = ".databacked/prefect"
"""Folder (in a local store, else under the working directory) of Prefect's cache records."""


def configure(
    *, store: str | os.PathLike[str] | None = None, catalog: str | os.PathLike[str] | None = None
) -> None:
    """Set the catalog and the default store for this process and the processes it starts.

    >>> configure(store="results", catalog="sqlite:///results/catalog.db")  # doctest: +SKIP
    """
    if store is not None:
        os.environ["DATABACKED_STORE"] = _absolute(os.fspath(store))
    if catalog is not None:
        text = os.fspath(catalog)
        os.environ["DATABACKED_CATALOG"] = text if "://" in text else f"sqlite:///{_absolute(text)}"


def _absolute(text: str) -> str:
    return text if "://" in text else os.path.abspath(os.path.expanduser(text))


def catalog_url() -> str:
    """The catalog every call made through the integration is recorded in."""
    url = os.environ.get("DATABACKED_CATALOG")
    if url:
        return url
    from databacked.config import Settings

    return Settings().catalog


def catalog(url: str | None = None) -> Catalog:
    """This process's Catalog for ``url`` or :func:`catalog_url` (opened once per URL)."""
    url = url or catalog_url()
    with _LOCK:
        found = _CATALOGS.get(url)
        if found is None:
            from databacked.catalog import Catalog

            found = _CATALOGS[url] = Catalog.open(url)
        return found


def store(url: str) -> Store:
    """One Store object per URL in this process (fsspec filesystems are reused)."""
    with _LOCK:
        found = _STORES.get(url)
        if found is None:
            found = _STORES[url] = Store(url)
        return found


def default_store() -> Store | None:
    url = os.environ.get("DATABACKED_STORE")
    return store(url) if url else None


def locate(path: str | os.PathLike[str]) -> tuple[Store, str]:
    """The store a file belongs to and its path there.

    Inside the configured store: that store (so ``databacked ls`` lists it with the rest);
    elsewhere: the store of the file's own folder (or bucket prefix).
    """
    text = os.fspath(path)
    if text.startswith("file://"):
        text = text[len("file://") :]
    full = text if "://" in text else os.path.abspath(os.path.expanduser(text))
    root = default_store()
    if root is not None:
        base = root.url.rstrip("/")
        if full.startswith(base + "/"):
            return root, full[len(base) + 1 :]
    folder, _, name = full.rstrip("/").rpartition("/")
    return store(folder or "/"), name


def records_dir(target_store: Store | None = None) -> Path:
    """Where Prefect's cache records of a store go: inside it when local, else locally."""
    if target_store is not None and target_store.is_local:
        return Path(target_store.url) / RECORDS
    base = default_store()
    if base is not None and base.is_local:
        return Path(base.url) / RECORDS
    return Path.cwd() / RECORDS


__all__ = ["catalog", "catalog_url", "configure", "default_store", "locate", "records_dir", "store"]
