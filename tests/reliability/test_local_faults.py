"""ENOSPC and EIO in local writes: one clear StoreError, the previous version intact, no
staging leftovers. Injected at the crash points of every writer, and (soak, as root) from a
real full tmpfs."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reliability_report import Campaign

import databacked as db
from databacked import crashpoints
from databacked.store import STAGING_PREFIX

VALUES = {
    "t.csv": (pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [3, 4, 5]})),
    "j.json": ({"v": 1}, {"v": 2, "more": list(range(50))}),
    "n.npy": (np.arange(10), np.arange(20)),
    "i.ome.tiff": (np.ones((2, 8, 8), "u2"), np.full((2, 8, 8), 7, "u2")),
    "z.ome.zarr": (np.ones((2, 8, 8), "u2"), np.full((2, 8, 8), 7, "u2")),
}
# where each writer can fail: while streaming, when complete, and (folders) per file
POINTS = {
    "t.csv": ["store.file.write", "store.file.staged"],
    "j.json": ["store.file.write", "store.file.staged"],
    "n.npy": ["store.file.write", "store.file.staged"],
    "i.ome.tiff": ["store.file.staged"],
    "z.ome.zarr": ["store.dir.write", "store.dir.staged"],
}
CASES = [(n, point, code) for n in VALUES for point in POINTS[n] for code in ("ENOSPC", "EIO")]


@pytest.fixture
def armed(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.delenv("DATABACKED_FAULT", raising=False)
    crashpoints.reload()


def _same(a: object, b: object) -> bool:
    if isinstance(a, pd.DataFrame):
        return a.equals(b)
    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b))
    return a == b


def _check_intact(store: db.Store, name: str, old: object, old_hash: str) -> int:
    """0 when the old version is whole and nothing is left in staging, else 1."""
    leftovers = [i.path for i in store.list() if STAGING_PREFIX in i.path]
    whole = store.hash(name) == old_hash and _same(db.load(store.uri(name)), old)
    return 0 if whole and not leftovers else 1


@pytest.mark.parametrize(("name", "point", "code"), CASES)
def test_injected_disk_errors(
    tmp_path: Path, armed: pytest.MonkeyPatch, campaign: Campaign, name: str, point: str, code: str
) -> None:
    store = db.Store(tmp_path / "data")
    old, new = VALUES[name]
    first = db.save(old, store.uri(name))
    armed.setenv("DATABACKED_FAULT", f"{point}:{code}")
    crashpoints.reload()
    with pytest.raises(db.StoreError) as info:
        db.save(new, store.uri(name))
    armed.delenv("DATABACKED_FAULT")
    crashpoints.reload()
    message = str(info.value)
    assert os.strerror(getattr(errno, code)).lower() in message.lower() or "input/output" in message
    assert name in message and "\n" not in message
    lost = _check_intact(store, name, old, first.hash)
    campaign.add(f"{code} injected in local writes", faults=1, lost_or_corrupt=lost)
    assert lost == 0


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (needs root): a real ENOSPC from the kernel."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs root (mount -t tmpfs); the injected ENOSPC cases ran")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.fail(f"could not mount a small tmpfs as root: {done.stderr.decode()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.soak
def test_real_enospc_on_a_full_tmpfs(full_disk: Path, campaign: Campaign) -> None:
    store = db.Store(full_disk / "data")
    firsts = {name: db.save(old, store.uri(name)) for name, (old, _) in VALUES.items()}
    big = {
        "t.csv": pd.DataFrame({"a": np.arange(400_000)}),
        "j.json": {"v": list(range(400_000))},
        "n.npy": np.arange(1_000_000),
        "i.ome.tiff": np.ones((4, 512, 512), "u2"),
        "z.ome.zarr": np.random.default_rng(0).integers(0, 60000, (4, 512, 512), dtype="u2"),
    }
    filler = full_disk / "filler"
    with open(filler, "wb") as f:  # leave ~1 MiB free: every big write hits ENOSPC
        free = os.statvfs(full_disk).f_bavail * os.statvfs(full_disk).f_frsize
        f.write(b"\0" * max(0, free - 2**20))
    for name, value in big.items():
        with pytest.raises(db.StoreError, match="space") as info:
            db.save(value, store.uri(name))
        assert "previous version" in str(info.value)
        lost = _check_intact(store, name, VALUES[name][0], firsts[name].hash)
        campaign.add("ENOSPC from a real full tmpfs", faults=1, lost_or_corrupt=lost)
        assert lost == 0, name
