"""Input files (``db.File``) are hashed once and then trusted by ``stat``, through the
catalog's stat cache, asked once for all the files of the calls that become ready."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import databacked as db
from databacked.catalog import Catalog
from databacked.engine.files import RACY_NS


@db.step
def size(src: db.File) -> int:
    return os.path.getsize(src)


@db.pipeline
def sizes(paths: list[str]):
    return size.map(src=paths)


def _inputs(folder: Path, count: int) -> list[str]:
    folder.mkdir()
    old = time.time() - 2 * RACY_NS / 1e9  # older than the racy-stat window: cacheable
    paths = []
    for i in range(count):
        path = folder / f"f{i:03d}.bin"
        path.write_bytes(b"x" * (i + 1))
        os.utime(path, (old, old))
        paths.append(str(path))
    return paths


def test_a_cold_run_asks_the_stat_cache_once_and_a_rerun_hashes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _inputs(tmp_path / "in", 30)
    asked: list[int] = []
    real = Catalog.stat_cache_get

    def counting(self: Catalog, store_url: str, wanted: object) -> object:
        wanted = list(wanted)  # type: ignore[call-overload]
        asked.append(len(wanted))
        return real(self, store_url, wanted)

    monkeypatch.setattr(Catalog, "stat_cache_get", counting)
    hashed: list[str] = []
    import databacked.engine.files as files

    real_hash = files.hash_file
    monkeypatch.setattr(files, "hash_file", lambda p: hashed.append(p) or real_hash(p))
    where = {"store": str(tmp_path / "data"), "catalog": f"sqlite:///{tmp_path / 'c.db'}"}

    first = db.run(sizes, paths, executor="inline", **where)
    assert first.ok and [a.load() for a in first.value] == list(range(1, 31))
    assert asked == [30]  # one query for the 30 files, not one more per file
    assert len(hashed) == 30

    asked.clear()
    hashed.clear()
    again = db.run(sizes, paths, executor="inline", **where)
    assert again.counts()["cached"] == 30
    assert asked == [30] and hashed == []  # trusted by stat: not one file read again
