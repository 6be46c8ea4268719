"""Engine fixtures: a tmp local store, a SQLite catalog, and step modules written to disk."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def catalog_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def write_module(tmp_path: Path) -> Iterator[Callable[[str, str], ModuleType]]:
    """Write ``source`` as a module in tmp_path and import it (fresh each call)."""
    folder = tmp_path / "mods"
    folder.mkdir()
    sys.path.insert(0, str(folder))
    names: list[str] = []

    def write(stem: str, source: str) -> ModuleType:
        name = f"{stem}_{uuid.uuid4().hex[:8]}"
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        names.append(name)
        return importlib.import_module(name)

    yield write
    sys.path.remove(str(folder))
    for name in names:
        sys.modules.pop(name, None)
