"""One Prefect API for all Prefect integration tests (its first start takes ~10-30 s).

``prefect_test_harness`` starts Prefect's temporary server (uvicorn + SQLite, the same one
the ephemeral profile starts) with PREFECT_HOME inside a temporary folder; flows run in this
process talk to it, and flows run in subprocesses reach it through PREFECT_API_URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from databacked.testing import services


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a running temporary Prefect API (PREFECT_HOME in a temporary folder)."""
    try:
        import prefect  # noqa: F401
        import prefect_dask  # noqa: F401
    except ImportError:
        services.unavailable("Prefect tests need the extra: pip install 'databacked[prefect]'")
    home = tmp_path_factory.mktemp("prefect-home")
    saved = {k: os.environ.get(k) for k in _ENV}
    os.environ.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        DO_NOT_TRACK="1",
    )
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    try:
        with prefect_test_harness(server_startup_timeout=120):
            yield str(PREFECT_API_URL.value())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_ENV = ("PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_LOGGING_LEVEL", "DO_NOT_TRACK")


@pytest.fixture
def databacked_env(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """A fresh store folder and SQLite catalog, set for this process and its children."""
    store = tmp_path / "store"
    store.mkdir()
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.setenv("DATABACKED_STORE", str(store))
    monkeypatch.setenv("DATABACKED_CATALOG", catalog)
    return {"store": store, "catalog": catalog, "api": prefect_api}
