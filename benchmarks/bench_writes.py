"""Write-path benchmarks: what hashing while writing saves, and what the one read-back costs.

``run()`` returns one dict per case for ``benchmarks/run.py`` (section "Writes"):

- OME-Zarr: ``OmeZarr.write`` (hashed while zarr writes the chunks) against the same write
  followed by a read-back hash of the folder (what databacked did before), and the plain zarr
  write as the floor.
- OME-TIFF: the read-back that stays (tifffile seeks back while writing, so the finished file
  is hashed once, memory-mapped from the page cache) as a share of the whole ``write``.
- An OME-Zarr overwrite (staged, then swapped in with one RENAME_EXCHANGE) against a first
  write of the same folder.

Durability "none" throughout, so the figures are CPU and page cache, not the disk. The image is
2 x Z x 2048 x 2048 uint16, ``DATABACKED_BENCH_WRITES_MB`` MiB (default 256). Best of 3.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zarr

import databacked as db
from databacked.hashing import hash_file
from databacked.store import Store


def _best(fn: Callable[[], Any], repeat: int = 3, before: Callable[[], Any] | None = None) -> float:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _row(case: str, seconds: float, baseline: str, baseline_seconds: float) -> dict[str, Any]:
    return {
        "section": "Writes",
        "case": case,
        "seconds": round(seconds, 4),
        "baseline": baseline,
        "baseline_seconds": round(baseline_seconds, 4),
        "ratio": round(seconds / baseline_seconds, 3) if baseline_seconds else None,
    }


def run() -> list[dict[str, Any]]:
    """Measure the write path in this process; one dict per case."""
    planes = max(1, int(os.environ.get("DATABACKED_BENCH_WRITES_MB", "256")) // 16)
    image = np.random.default_rng(0).integers(0, 4096, (2, planes, 2048, 2048), dtype=np.uint16)
    mb = image.nbytes / 2**20
    chunks = (1, 1, 1024, 1024)
    zfmt = db.OmeZarr(dims="CZYX", chunks=chunks)
    tfmt = db.OmeTiff(dims="CZYX")
    with tempfile.TemporaryDirectory(prefix="databacked-bench-writes-") as tmp:
        root = Path(tmp)
        store = Store(root / "data", durability="none")

        def clear() -> None:
            shutil.rmtree(root / "data", ignore_errors=True)
            shutil.rmtree(root / "raw", ignore_errors=True)

        def name(ext: str) -> str:
            return f"{uuid.uuid4().hex}{ext}"

        def zarr_hashed() -> None:
            zfmt.write(image, store, name(".ome.zarr"))

        def zarr_read_back() -> None:
            path = name(".ome.zarr")
            zfmt.write(image, store, path)
            store.hash(path)  # the read-back the hash used to cost

        def zarr_plain() -> None:
            arr = zarr.create_array(
                root / "raw" / name(".zarr"), shape=image.shape, dtype=image.dtype, chunks=chunks
            )
            arr[:] = image

        hashed = _best(zarr_hashed, before=clear)
        read_back = _best(zarr_read_back, before=clear)
        plain = _best(zarr_plain, before=clear)

        tiff_paths: list[str] = []

        def tiff_write() -> None:
            tiff_paths.append(name(".ome.tiff"))
            tfmt.write(image, store, tiff_paths[-1])

        tiff_total = _best(tiff_write, before=clear)
        tfmt.write(image, store, "last.ome.tiff")
        tiff_hash = _best(lambda: hash_file(store.uri("last.ome.tiff")))

        zfmt.write(image, store, "same.ome.zarr")
        overwrite = _best(lambda: zfmt.write(image, store, "same.ome.zarr"))

        def first_write() -> None:
            store.delete("first.ome.zarr")
            zfmt.write(image, store, "first.ome.zarr")

        first = _best(first_write)
    shape = "x".join(str(n) for n in image.shape)
    return [
        _row(
            f"OME-Zarr write, hashed while writing ({shape}, {mb:.0f} MiB)",
            hashed,
            "same write + read-back hash",
            read_back,
        ),
        _row("OME-Zarr write, hashed while writing", hashed, "plain zarr write", plain),
        _row(
            "OME-TIFF read-back hash (page cache, all cores)",
            tiff_hash,
            "whole OmeTiff.write incl. that hash",
            tiff_total,
        ),
        _row("OME-Zarr overwrite (staged + RENAME_EXCHANGE)", overwrite, "first write", first),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
