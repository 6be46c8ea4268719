"""gc spares what calls holding a live lease may have written; verify --repair undoes killed
folder swaps and forgets the calls of corrupt outputs so they compute again."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import databacked as db
from databacked.cli.app import app
from databacked.engine import housekeeping
from databacked.store.folders import OLD_PREFIX

KEY = "a" * 64


def _old(path: Path, seconds: float = 7200) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_gc_keeps_outputs_of_calls_holding_a_live_lease(tmp_path: Path) -> None:
    store = db.Store(tmp_path / "data")
    with db.Catalog.open(f"sqlite:///{tmp_path}/c.db") as catalog:
        store.put_bytes(f".databacked/objects/step/{KEY}.npy", b"being recorded")
        store.put_bytes(".databacked/objects/step/orphan.npy", b"old garbage")
        _old(tmp_path / "data/.databacked/objects/step" / f"{KEY}.npy")
        _old(tmp_path / "data/.databacked/objects/step/orphan.npy")
        store.put_bytes(".databacked/objects/step/fresh.npy", b"written under a lease")
        assert catalog.acquire([KEY], "other-driver", 600.0) == {KEY}
        report = housekeeping.gc(store, catalog)
        assert report.removed == (".databacked/objects/step/orphan.npy",)
        assert store.exists(f".databacked/objects/step/{KEY}.npy")
        assert store.exists(".databacked/objects/step/fresh.npy")
        catalog.release(None, "other-driver")
        after = housekeeping.gc(store, catalog)
        assert set(after.removed) == {
            f".databacked/objects/step/{KEY}.npy",
            ".databacked/objects/step/fresh.npy",
        }


def test_gc_repairs_a_killed_swap_instead_of_collecting_it(tmp_path: Path) -> None:
    store = db.Store(tmp_path / "data")
    path = ".databacked/objects/step/x.ome.zarr"
    db.OmeZarr(dims="YX").write(np.zeros((8, 8), "u2"), store, path)
    folder = tmp_path / "data/.databacked/objects/step"
    os.rename(folder / "x.ome.zarr", folder / f"{OLD_PREFIX}x.ome.zarr")
    with db.Catalog.open(f"sqlite:///{tmp_path}/c.db") as catalog:
        dry = housekeeping.gc(store, catalog, dry_run=True)
        assert not any(OLD_PREFIX in p for p in dry.removed)
        housekeeping.gc(store, catalog)
    assert (folder / "x.ome.zarr").is_dir()  # put back (and, unreferenced, then collected)
    assert not (folder / f"{OLD_PREFIX}x.ome.zarr").exists()


STEPS = """
import numpy as np
import databacked as db

@db.step(target="img/{i}.ome.zarr", format=db.OmeZarr(dims="YX"))
def img(i: int) -> np.ndarray:
    return np.full((8, 8), i, dtype="u2")

@db.pipeline
def imgs(n: int):
    return img.map(i=list(range(n)))
"""


def test_verify_repair(tmp_path: Path, write_module, store_url: str, catalog_db: str) -> None:
    mod = write_module("repair_steps", STEPS)
    first = db.run(mod.imgs, 3, store=store_url, catalog=catalog_db, executor="inline")
    assert first.ok
    data = Path(store_url)
    # img/0: a swap killed between its two renames; img/1: silently corrupted (same stamp)
    os.rename(data / "img/0.ome.zarr", data / f"img/{OLD_PREFIX}0.ome.zarr")
    chunk = next(
        p for p in sorted((data / "img/1.ome.zarr").rglob("*")) if p.is_file() and "c" in p.parts
    )
    st = chunk.stat()
    raw = bytearray(chunk.read_bytes())
    raw[-1] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    os.utime(chunk, ns=(st.st_atime_ns, st.st_mtime_ns))

    runner = CliRunner()
    flags = ["--store", store_url, "--catalog", catalog_db]
    result = runner.invoke(app, ["verify", "--repair", *flags])
    assert result.exit_code == 1, result.output
    assert "repaired" in result.output and "img/0.ome.zarr" in result.output
    assert "corrupt  img/1.ome.zarr" in result.output
    assert (data / "img/0.ome.zarr").is_dir()

    again = db.run(mod.imgs, 3, store=store_url, catalog=catalog_db, executor="inline")
    status = dict(
        zip(
            again.calls["outputs"].map(lambda o: next(iter(o.values()))),
            again.calls["status"],
            strict=True,
        )
    )
    assert status == {
        "img/0.ome.zarr": "cached",
        "img/1.ome.zarr": "ran",
        "img/2.ome.zarr": "cached",
    }
    clean = runner.invoke(app, ["verify", *flags])
    assert clean.exit_code == 0, clean.output
