"""Engine fixtures: a tmp local store, a SQLite catalog, and step modules written to disk."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def catalog_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"
