"""Fixtures of the analysisrun tests (helpers are in arhelpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from arhelpers import write_data

from databacked.testing import services


@pytest.fixture(autouse=True)
def _matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        services.unavailable("matplotlib is missing: pip install 'databacked[analysisrun]'")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_data(tmp_path / "data")
