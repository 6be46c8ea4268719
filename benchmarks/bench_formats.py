"""Format benchmarks: db.save/db.load against the raw library calls, in the same process.

``run()`` returns one dict per case for ``benchmarks/run.py``: an OME-TIFF of 2 x 2048 x 2048
uint16 against ``tifffile.imwrite``/``imread``, an OME-Zarr of the same array against plain
``zarr`` (same chunks), and a 1,000,000-row DataFrame as Parquet against
``df.to_parquet``/``pd.read_parquet``. Best of 3 runs each, interleaved; the baselines write
a new file each time, as db.save does.
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
import pandas as pd
import tifffile
import zarr

import databacked as db
from databacked.store import Store

GOAL = 1.2  # issue 2: save/load within 1.2x of the plain library calls


_RUNS: list[Path] = []  # where _settle clears the outputs of earlier timed writes


def _settle() -> None:
    """Untimed, before every timed call: remove earlier outputs and flush the page cache,
    so neither side pays for freeing or writing back the other's gigabyte."""
    for folder in _RUNS:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    os.sync()


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        _settle()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _new(folder: Path, suffix: str) -> Path:
    """A path no earlier run wrote: pipelines write new files, not the same one again."""
    return folder / f"{uuid.uuid4().hex}{suffix}"


def _row(
    case: str, seconds: float, baseline: str, baseline_seconds: float, *, goal: bool = True
) -> dict[str, Any]:
    ratio = seconds / baseline_seconds if baseline_seconds else None
    row: dict[str, Any] = {
        "section": "Formats",
        "case": case,
        "seconds": round(seconds, 4),
        "baseline": baseline,
        "baseline_seconds": round(baseline_seconds, 4),
        "ratio": round(ratio, 3) if ratio is not None else None,
    }
    if ratio is not None and goal:
        row.update(goal=f"<= {GOAL}x", goal_met=ratio <= GOAL)
    return row


def _pair(ours: Callable[[], Any], raw: Callable[[], Any]) -> tuple[float, float]:
    # interleaved so a noisy neighbour hurts both sides of the ratio alike
    a, b = _best(ours), _best(raw)
    return min(a, _best(ours)), min(b, _best(raw))


def _images(tmp: Path) -> list[dict[str, Any]]:
    # DATABACKED_BENCH_IMAGE_MB (default 1024, the 1 GiB): 2 channels x Z x 2048 x 2048
    planes = max(1, int(os.environ.get("DATABACKED_BENCH_IMAGE_MB", "1024")) // 16)
    image = np.random.default_rng(0).integers(
        0, 4096, size=(2, planes, 2048, 2048), dtype=np.uint16
    )
    mb = image.nbytes / 2**20
    shape = "x".join(str(n) for n in image.shape)
    fmt = db.OmeTiff(dims="CZYX", channel_names=["a", "b"])
    ours_path, raw_path = tmp / "ours.ome.tiff", tmp / "raw.tif"
    db.save(image, ours_path, format=fmt)  # what the load rows read
    tifffile.imwrite(raw_path, image, photometric="minisblack")
    runs = tmp / "runs"
    _RUNS.append(runs)

    def raw_durable() -> None:  # what db.save promises: the bytes on disk when it returns
        tifffile.imwrite(_new(runs, ".tif"), image, photometric="minisblack")
        os.sync()

    save, write = _pair(lambda: db.save(image, _new(runs, ".ome.tiff"), format=fmt), raw_durable)
    # The same write without the durability sync db.save does (one syncfs per save, as a
    # commit batch of one): the raw baseline leaves its bytes in the page cache.
    scratch = Store(str(runs), durability="none")
    nosync, write_cached = _pair(
        lambda: fmt.write(image, scratch, _new(Path(), ".ome.tiff").name),
        lambda: tifffile.imwrite(_new(runs, ".tif"), image, photometric="minisblack"),
    )
    load, read = _pair(lambda: db.load(ours_path), lambda: tifffile.imread(raw_path))
    rows = [
        _row(
            f"db.save OME-TIFF {shape} uint16 ({mb:.0f} MiB)",
            save,
            "tifffile.imwrite + os.sync",
            write,
        ),
        _row(
            "OME-TIFF write, durability none (for reference)",
            nosync,
            "tifffile.imwrite",
            write_cached,
            goal=False,
        ),
        _row("db.load OME-TIFF", load, "tifffile.imread", read),
    ]
    chunks = (1, 1, 1024, 1024)
    zfmt = db.OmeZarr(dims="CZYX", chunks=chunks)
    zours, zraw = tmp / "ours.ome.zarr", tmp / "raw.zarr"

    def raw_zarr_write(path: Path) -> None:
        arr = zarr.create_array(path, shape=image.shape, dtype=image.dtype, chunks=chunks)
        arr[:] = image

    db.save(image, zours, format=zfmt)
    raw_zarr_write(zraw)

    def raw_zarr_durable() -> None:
        raw_zarr_write(_new(runs, ".zarr"))
        os.sync()

    zsave, zwrite = _pair(
        lambda: db.save(image, _new(runs, ".ome.zarr"), format=zfmt), raw_zarr_durable
    )
    znosync, zwrite_cached = _pair(
        lambda: zfmt.write(image, scratch, _new(Path(), ".ome.zarr").name),
        lambda: raw_zarr_write(_new(runs, ".zarr")),
    )
    zload, zread = _pair(lambda: db.load(zours), lambda: zarr.open_array(zraw, mode="r")[:])
    rows += [
        _row(
            f"db.save OME-Zarr {shape} uint16 ({mb:.0f} MiB)",
            zsave,
            "zarr array write + os.sync",
            zwrite,
        ),
        _row(
            "OME-Zarr write, durability none (for reference)",
            znosync,
            "zarr array write",
            zwrite_cached,
            goal=False,
        ),
        _row("db.load OME-Zarr", zload, "zarr array read", zread),
    ]
    return rows


def _tables(tmp: Path) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    n = 1_000_000
    frame = pd.DataFrame(
        {"cell": np.arange(n), "area": rng.random(n), "label": rng.integers(0, 20, n)}
    )
    ours_path, raw_path = tmp / "ours.parquet", tmp / "raw.parquet"
    db.save(frame, ours_path)
    frame.to_parquet(raw_path, engine="pyarrow", compression="zstd")
    runs = tmp / "table-runs"
    _RUNS.append(runs)

    def raw_durable() -> None:
        frame.to_parquet(_new(runs, ".parquet"), engine="pyarrow", compression="zstd")
        os.sync()

    # the same codec on both sides, so the figure is our overhead, not a codec choice
    save, write = _pair(lambda: db.save(frame, _new(runs, ".parquet")), raw_durable)
    load, read = _pair(lambda: db.load(ours_path), lambda: pd.read_parquet(raw_path))
    return [
        _row("db.save Parquet 1,000,000 rows", save, "df.to_parquet + os.sync", write),
        _row("db.load Parquet 1,000,000 rows", load, "pd.read_parquet", read),
    ]


def run() -> list[dict[str, Any]]:
    """Measure format save/load in this process; one dict per case."""
    with tempfile.TemporaryDirectory(prefix="databacked-bench-") as tmp:
        return _images(Path(tmp)) + _tables(Path(tmp))


if __name__ == "__main__":
    for row in run():
        print(row)
