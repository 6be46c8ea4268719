"""verify, gc and forget: the library functions and their CLI commands, on a real store."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from databacked.cli.app import app
from databacked.engine import housekeeping
from databacked.errors import ConfigError

if TYPE_CHECKING:
    from conftest import History


def local(history: History, path: str) -> Path:
    return Path(history.store.url) / path


def test_verify_passes_on_untouched_files(history: History) -> None:
    report = housekeeping.verify(history.store, history.catalog)
    assert report.ok
    assert report.checked >= 2
    assert report.corrupt == ()
    assert report.missing == ()


def test_verify_finds_corrupt_and_missing_files(history: History) -> None:
    local(history, history.summary_path).write_bytes(b'{"n": 2}')  # same size, other bytes
    local(history, history.crop_path).unlink()
    report = housekeeping.verify(history.store, history.catalog)
    assert not report.ok
    assert report.corrupt == (history.summary_path,)
    assert report.missing == (history.crop_path,)


def test_verify_command_exit_codes(history: History) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", *history.flags])
    assert ok.exit_code == 0, ok.output
    assert "match their recorded hashes" in ok.output
    local(history, history.summary_path).write_bytes(b"garbage")
    bad = runner.invoke(app, ["verify", *history.flags])
    assert bad.exit_code == 1
    assert f"corrupt  {history.summary_path}" in bad.output


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_gc_removes_unreferenced_objects_and_old_staging(history: History) -> None:
    store = history.store
    store.put_bytes(".databacked/objects/crop/orphan.json", b"[1, 2, 3, 4]")  # 12 bytes
    store.put_bytes("notes/readme.txt", b"kept: outside the object area")
    old_tmp = local(history, ".databacked/objects/crop/.databacked-tmp-dead")
    old_tmp.write_bytes(b"12345")
    _age(old_tmp, 2 * 3600)
    new_tmp = local(history, "normalized/.databacked-tmp-live")
    new_tmp.parent.mkdir(parents=True, exist_ok=True)
    new_tmp.write_bytes(b"still being written")

    preview = housekeeping.gc(store, history.catalog, dry_run=True)
    assert preview.dry_run
    assert set(preview.removed) == {
        ".databacked/objects/crop/orphan.json",
        ".databacked/objects/crop/.databacked-tmp-dead",
    }
    assert preview.bytes_freed == 12 + 5
    assert local(history, ".databacked/objects/crop/orphan.json").exists()

    report = housekeeping.gc(store, history.catalog)
    assert report.removed == preview.removed
    assert not local(history, ".databacked/objects/crop/orphan.json").exists()
    assert not old_tmp.exists()
    assert new_tmp.exists()
    assert local(history, history.crop_path).exists()
    assert local(history, "notes/readme.txt").exists()
    assert housekeeping.verify(store, history.catalog).ok


def test_gc_keeps_files_inside_a_referenced_directory(history: History) -> None:
    from databacked.catalog import CallRecord

    store = history.store
    store.put_bytes(".databacked/objects/seg/k.ome.zarr/zarr.json", b"{}")
    store.put_bytes(".databacked/objects/seg/k.ome.zarr/0/c/0", b"\x00" * 8)
    history.catalog.record_calls(
        [
            CallRecord(
                key="ab" * 32,
                step="seg",
                store=store.url,
                outputs={
                    "out": {
                        "path": ".databacked/objects/seg/k.ome.zarr",
                        "hash": "cd" * 32,
                        "size": 10,
                        "format": "ome-zarr",
                        "stamp": "m:1:1",
                        "metadata": {},
                    }
                },
            )
        ]
    )
    report = housekeeping.gc(store, history.catalog)
    assert report.removed == ()
    assert local(history, ".databacked/objects/seg/k.ome.zarr/0/c/0").exists()


def test_gc_everywhere_also_removes_unreferenced_files_outside_objects(history: History) -> None:
    history.store.put_bytes("notes/readme.txt", b"unreferenced")
    history.store.put_bytes(".databacked/catalog.db", b"a catalog kept in the store")
    report = housekeeping.gc(history.store, history.catalog, everywhere=True)
    assert "notes/readme.txt" in report.removed
    assert local(history, ".databacked/catalog.db").exists()
    assert history.summary_path not in report.removed
    assert not local(history, "notes/readme.txt").exists()


def test_gc_command_dry_run_then_real(history: History) -> None:
    history.store.put_bytes(".databacked/objects/crop/orphan.json", b"[0]")
    runner = CliRunner()
    dry = runner.invoke(app, ["gc", "--dry-run", *history.flags])
    assert dry.exit_code == 0, dry.output
    assert "would remove  .databacked/objects/crop/orphan.json" in dry.output
    assert local(history, ".databacked/objects/crop/orphan.json").exists()
    real = runner.invoke(app, ["gc", *history.flags])
    assert real.exit_code == 0, real.output
    assert "Removed 1 unreferenced file (3 B) in .databacked/objects/" in real.output
    assert not local(history, ".databacked/objects/crop/orphan.json").exists()


def test_forget_by_step_key_and_age(history: History) -> None:
    catalog = history.catalog
    assert housekeeping.forget(catalog, older_than="7d") == 0
    assert housekeeping.forget(catalog, step="crop") == 1
    assert catalog.lookup([history.crop_key]) == {}
    assert history.summary_key in catalog.lookup([history.summary_key])
    assert housekeeping.forget(catalog, key=history.summary_key[:10]) == 1
    assert catalog.lookup([history.summary_key]) == {}


def test_forget_command(history: History) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["forget", "crop", "--catalog", history.catalog_url])
    assert result.exit_code == 0, result.output
    assert "Forgot 1 cached call." in result.output
    assert history.catalog.lookup([history.crop_key]) == {}
    aged = runner.invoke(app, ["forget", "--older-than", "0s", "--catalog", history.catalog_url])
    assert aged.exit_code == 0
    assert "Forgot 1 cached call." in aged.output


def test_parse_age() -> None:
    assert housekeeping.parse_age("7d") == 7 * 86400
    assert housekeeping.parse_age("1.5h") == 5400
    assert housekeeping.parse_age("90") == 90
    assert housekeeping.parse_age(30.0) == 30
    with pytest.raises(ConfigError, match="30m, 12h, 7d"):
        housekeeping.parse_age("a week")


def test_verify_and_gc_on_s3(s3_bucket: str, tmp_path: Path) -> None:
    from databacked.catalog import CallRecord, Catalog
    from databacked.store import Store

    store = Store(f"{s3_bucket}/project")
    good = store.put_bytes(".databacked/objects/step/a.json", b'{"a": 1}')
    bad = store.put_bytes("results/b.json", b'{"b": 2}')
    store.put_bytes(".databacked/objects/step/orphan.json", b"[]")
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}") as catalog:
        catalog.record_calls(
            [
                CallRecord(
                    key=f"{i}" * 64,
                    step="step",
                    store=store.url,
                    outputs={
                        "out": {
                            "path": w.path,
                            "hash": w.hash,
                            "size": w.size,
                            "format": "json",
                            "stamp": w.stamp,
                            "metadata": {},
                        }
                    },
                )
                for i, w in enumerate((good, bad))
            ]
        )
        assert housekeeping.verify(store, catalog).ok
        store.put_bytes("results/b.json", b'{"b": 3}')
        assert housekeeping.verify(store, catalog).corrupt == ("results/b.json",)
        report = housekeeping.gc(store, catalog)
        assert report.removed == (".databacked/objects/step/orphan.json",)
        assert not store.exists(".databacked/objects/step/orphan.json")
        assert store.exists(good.path)
