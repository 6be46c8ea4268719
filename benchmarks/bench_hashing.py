"""Hashing benchmarks: files (mmap + all cores) and parameter values, against plain baselines.

``run()`` returns one dict per case for ``benchmarks/run.py``. The file size is
``DATABACKED_BENCH_HASH_MB`` MiB (default 1024, the issue's 1 GiB) so a run stays short.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import numpy as np

from databacked.hashing import hash_file, hash_value

_CHUNK = 8 * 1024 * 1024


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Best wall time of a few runs: the first one also warms the page cache."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _stream(path: Path, make: Callable[[], Any]) -> str:
    h = make()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _row(
    case: str, seconds: float, baseline: str, baseline_seconds: float, **extra: Any
) -> dict[str, Any]:
    ratio = seconds / baseline_seconds if baseline_seconds else None
    row = {
        "section": "Hashing",
        "case": case,
        "seconds": round(seconds, 4),
        "baseline": baseline,
        "baseline_seconds": round(baseline_seconds, 4),
        "ratio": round(ratio, 3) if ratio is not None else None,
    }
    if "limit" in extra and ratio is not None:
        row.update(goal=f"<= {extra['limit']}x", goal_met=ratio <= extra["limit"])
    if "note" in extra:
        row["note"] = extra["note"]
    return row


def _raw_blake3_mmap(path: Path) -> str:
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update_mmap(path)
    return h.hexdigest()


def _file_cases(size_mb: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="databacked-bench-") as tmp:
        path = Path(tmp) / "big.bin"
        block = np.random.default_rng(0).integers(0, 256, _CHUNK, dtype=np.uint8).tobytes()
        with open(path, "wb") as f:
            for _ in range(max(1, size_mb * 1024 * 1024 // _CHUNK)):
                f.write(block)
        gb = path.stat().st_size / 1e9
        # Interleaved so that a noisy neighbour hurts both sides of a ratio alike.
        ours = _best(lambda: hash_file(path))
        fastest = _best(lambda: _raw_blake3_mmap(path))
        ours = min(ours, _best(lambda: hash_file(path)))
        single = _best(lambda: _stream(path, blake3.blake3), repeat=2)
        md5 = _best(lambda: _stream(path, hashlib.md5), repeat=1)
        sha = _best(lambda: _stream(path, hashlib.sha256), repeat=1)
    case = f"hash_file {size_mb} MiB ({gb / ours:.2f} GB/s)"
    return [
        _row(
            case,
            ours,
            f"raw blake3 mmap, all threads ({gb / fastest:.2f} GB/s)",
            fastest,
            limit=1.25,
        ),
        _row(case, ours, f"blake3 1 thread, 8 MiB reads ({gb / single:.2f} GB/s)", single),
        _row(case, ours, f"hashlib.md5, as DVC ({gb / md5:.2f} GB/s)", md5),
        _row(case, ours, f"hashlib.sha256 ({gb / sha:.2f} GB/s)", sha),
    ]


def _value_cases() -> list[dict[str, Any]]:
    params = {f"param_{i}": [i, i * 0.5, f"v{i}"] for i in range(10_000)}
    rows = [
        _row(
            "hash_value dict of 10,000 entries",
            _best(lambda: hash_value(params)),
            "blake3 of repr(sorted items)",
            _best(lambda: blake3.blake3(repr(sorted(params.items())).encode()).hexdigest()),
        )
    ]
    array = np.random.default_rng(1).random(100 * 1000 * 1000 // 8)
    array_bytes = array.view(np.uint8)
    auto = blake3.blake3.AUTO
    rows.append(
        _row(
            "hash_value numpy array 100 MB",
            _best(lambda: hash_value(array)),
            "blake3 of array bytes (all threads)",
            _best(lambda: blake3.blake3(array_bytes, max_threads=auto).hexdigest()),
        )
    )
    return rows


def run() -> list[dict[str, Any]]:
    """Measure hashing in this process; one dict per case."""
    size_mb = int(os.environ.get("DATABACKED_BENCH_HASH_MB", "1024"))
    return _file_cases(size_mb) + _value_cases()


if __name__ == "__main__":
    for row in run():
        print(row)
