"""A real local store and SQLite catalog holding a small recorded history (no engine needed).

History: ``raw/fov.json`` (a source file) -> ``crop`` writes ``.databacked/objects/crop/K1.json``
-> ``summarize`` writes ``summary.json``; one failed call of ``summarize`` in the same run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from databacked.catalog import CallRecord, Catalog, InputRef


def fake_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@dataclass
class History:
    """Paths and keys of the recorded history, and the objects holding it."""

    store: Any
    catalog: Catalog
    catalog_url: str
    run_id: str
    crop_key: str
    summary_key: str
    failed_key: str
    crop_path: str = ".databacked/objects/crop/K1.json"
    summary_path: str = "summary.json"
    raw_path: str = "raw/fov.json"

    @property
    def flags(self) -> list[str]:
        return ["--store", self.store.url, "--catalog", self.catalog_url]


def _output(store: Any, path: str, value: Any) -> dict[str, Any]:
    result = store.put_bytes(path, json.dumps(value).encode())
    return {
        "path": result.path,
        "hash": result.hash,
        "size": result.size,
        "format": "json",
        "stamp": result.stamp,
        "metadata": {},
    }


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[History]:
    import databacked.store as store_mod  # the project's own code: an import error fails

    monkeypatch.chdir(tmp_path)
    for var in ("DATABACKED_STORE", "DATABACKED_CATALOG"):
        monkeypatch.delenv(var, raising=False)
    store = store_mod.Store(str(tmp_path / "data"))
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog.open(url)
    raw = store.put_bytes("raw/fov.json", b'{"cells": [1, 2, 3]}')
    run_id = catalog.start_run({"pipeline": "cells", "host": "here", "user": "me"})
    crop = CallRecord(
        key=fake_key("crop"),
        step="crop",
        fingerprint="crop@1",
        run_id=run_id,
        store=store.url,
        params={"cell_index": 2},
        inputs={"fov": [InputRef(hash=raw.hash, path="raw/fov.json")]},
        outputs={"out": _output(store, ".databacked/objects/crop/K1.json", [3])},
        started=1000.0,
        finished=1001.0,
        host="here",
        pid=1,
    )
    crop_hash = crop.outputs["out"]["hash"]  # type: ignore[index]
    summary = CallRecord(
        key=fake_key("summary"),
        step="summarize",
        fingerprint="summarize@1",
        run_id=run_id,
        store=store.url,
        params={},
        inputs={"crops": [InputRef(hash=crop_hash, path=".databacked/objects/crop/K1.json")]},
        outputs={"out": _output(store, "summary.json", {"n": 1})},
        started=1001.0,
        finished=1002.0,
        host="here",
        pid=1,
    )
    failed = CallRecord(
        key=fake_key("broken"),
        step="summarize",
        fingerprint="summarize@1",
        run_id=run_id,
        store=store.url,
        status="failed",
        params={"mode": "broken"},
        started=1001.0,
        finished=1001.5,
        error_type="ValueError",
        error_message="no cells in this field of view",
        traceback="Traceback (most recent call last):\nValueError: no cells in this field of view",
    )
    catalog.record_calls([crop, summary])
    catalog.record_failures([failed])
    catalog.finish_run(run_id, "failed", {"ran": 2, "failed": 1})
    try:
        yield History(
            store=store,
            catalog=catalog,
            catalog_url=url,
            run_id=run_id,
            crop_key=crop.key,
            summary_key=summary.key,
            failed_key=failed.key,
        )
    finally:
        catalog.close()
