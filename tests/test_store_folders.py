"""Folder artifacts (Zarr): hashed while zarr writes them, swapped in whole, and an
interrupted swap is put right before anything reads it -- locally and on S3 (moto)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import databacked as db
import databacked.store.folders as folders
from databacked.errors import ArtifactNotFound
from databacked.store import STAGING_PREFIX, Store, interrupted, repair_folder
from databacked.store.folders import OLD_PREFIX, WRITING_PREFIX


def _zarr(store: Store, path: str, value: np.ndarray) -> db.Artifact:
    record = db.OmeZarr(dims="CYX", chunks=(1, 8, 8)).write(value, store, path)
    return db.Artifact.from_record(store, record)


def test_hash_comes_from_the_writes_not_a_read_back(tmp_path: Path) -> None:
    store = Store(tmp_path)
    value = np.arange(2 * 16 * 16, dtype="u2").reshape(2, 16, 16)
    with store.directory_writer("a.ome.zarr") as out:
        import zarr

        group = zarr.open_group(out.store, mode="w", zarr_format=3)
        group.create_array("s0", shape=value.shape, dtype=value.dtype, chunks=(1, 8, 8))[...] = (
            value
        )
    assert out.read_back == 0
    assert out.seen and out.result is not None
    assert out.result.hash == store.hash("a.ome.zarr")


def test_files_written_around_the_zarr_store_are_read_back(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.directory_writer("b.zarr") as out:
        Path(out.path, "extra.txt").write_bytes(b"written directly")
    assert out.read_back == len(b"written directly")
    assert out.result is not None and out.result.hash == store.hash("b.zarr")


def test_overwrite_swaps_the_whole_folder(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = _zarr(store, "c.ome.zarr", np.zeros((2, 16, 16), "u2"))
    second = _zarr(store, "c.ome.zarr", np.ones((2, 16, 16), "u2"))
    assert first.hash != second.hash
    assert (db.load(store.uri("c.ome.zarr")) == 1).all()
    assert sorted(os.listdir(tmp_path)) == ["c.ome.zarr"]  # no staging or old folder left


def test_a_killed_fallback_swap_is_undone_by_the_next_read(tmp_path: Path) -> None:
    """Without RENAME_EXCHANGE the old folder is moved aside first; if the process dies
    right then, the target is missing until the next read puts the old version back."""
    store = Store(tmp_path)
    _zarr(store, "d.ome.zarr", np.full((2, 16, 16), 5, "u2"))
    os.rename(tmp_path / "d.ome.zarr", tmp_path / f"{OLD_PREFIX}d.ome.zarr")  # as a kill leaves it
    assert interrupted(store) == ["d.ome.zarr"]
    assert (db.load(store.uri("d.ome.zarr")) == 5).all()  # repaired on read
    assert sorted(os.listdir(tmp_path)) == ["d.ome.zarr"]
    assert store.infos(["d.ome.zarr"])["d.ome.zarr"] is not None


def test_infos_also_repairs(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _zarr(store, "sub/e.ome.zarr", np.full((2, 16, 16), 5, "u2"))
    os.rename(tmp_path / "sub/e.ome.zarr", tmp_path / f"sub/{OLD_PREFIX}e.ome.zarr")
    assert store.infos(["sub/e.ome.zarr"])["sub/e.ome.zarr"] is not None
    assert (tmp_path / "sub/e.ome.zarr").is_dir()


def test_fallback_swap_when_exchange_is_unsupported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folders, "exchange", lambda a, b: False)  # a filesystem without it
    store = Store(tmp_path)
    _zarr(store, "f.ome.zarr", np.zeros((2, 16, 16), "u2"))
    _zarr(store, "f.ome.zarr", np.full((2, 16, 16), 3, "u2"))
    assert (db.load(store.uri("f.ome.zarr")) == 3).all()
    assert sorted(os.listdir(tmp_path)) == ["f.ome.zarr"]


def test_exchange_swaps_two_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b" / "x").write_text("b")
    if not folders.exchange(str(tmp_path / "a"), str(tmp_path / "b")):
        pytest.skip("this filesystem has no renameat2(RENAME_EXCHANGE): the fallback is used")
    assert (tmp_path / "a" / "x").read_text() == "b"
    assert (tmp_path / "b" / "x").read_text() == "a"


def test_failed_folder_write_keeps_the_previous_version(tmp_path: Path) -> None:
    store = Store(tmp_path)
    before = _zarr(store, "g.ome.zarr", np.full((2, 16, 16), 9, "u2"))
    with pytest.raises(db.FormatError):
        db.OmeZarr(dims="CYX", chunks=(1, 8)).write(
            np.zeros((2, 16, 16), "u2"), store, "g.ome.zarr"
        )
    with pytest.raises(RuntimeError), store.directory_writer("g.ome.zarr") as out:
        Path(out.path, "zarr.json").write_text("{}")
        raise RuntimeError("the step died half-way")
    assert store.hash("g.ome.zarr") == before.hash
    assert not [p for p in os.listdir(tmp_path) if p.startswith(STAGING_PREFIX)]


# --- S3 ---------------------------------------------------------------------------------------


def test_s3_folder_is_staged_then_copied(s3_bucket: str) -> None:
    store = Store(f"{s3_bucket}/p")
    first = _zarr(store, "h.ome.zarr", np.zeros((2, 16, 16), "u2"))
    second = _zarr(store, "h.ome.zarr", np.full((2, 16, 16), 4, "u2"))
    assert first.hash != second.hash
    assert second.hash == store.hash("h.ome.zarr")
    assert (db.load(second) == 4).all()
    names = {i.path for i in store.list()}
    assert all(n.startswith("h.ome.zarr/") for n in names), names


def test_s3_interrupted_copy_counts_as_missing_until_repaired(s3_bucket: str) -> None:
    store = Store(f"{s3_bucket}/p")
    _zarr(store, "k.ome.zarr", np.zeros((2, 16, 16), "u2"))
    marker = f"{store.full_path('k.ome.zarr').rpartition('/')[0]}/{WRITING_PREFIX}k.ome.zarr"
    store.fs.pipe_file(marker, json.dumps({"staging": "none"}).encode())  # as a kill leaves it
    store.fs.invalidate_cache()
    with pytest.raises(ArtifactNotFound, match="interrupted"):
        store.info("k.ome.zarr")
    assert store.infos(["k.ome.zarr"])["k.ome.zarr"] is None
    with pytest.raises(ArtifactNotFound):
        db.load(store.uri("k.ome.zarr"))
    assert interrupted(store) == ["k.ome.zarr"]
    assert repair_folder(store, "k.ome.zarr") == "removed a half-written folder"
    assert interrupted(store) == []
    assert not store.exists("k.ome.zarr")
