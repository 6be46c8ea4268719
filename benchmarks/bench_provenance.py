"""RO-Crate export speed (issue 12) against the least any publication export must do.

Seed 000's demo pipeline runs once on a synthetic plate; then, median of a few rounds:
(a) ``export_rocrate`` with data (copy every file, blake3 check + sha256 while copying, OME
    metadata of the source images, the metadata graph, JSON-LD) against a bare loop that
    copies the same files and computes their sha256 (shutil + hashlib);
(b) ``export_rocrate --no-data`` once the sha256s are in the catalog, against the bare
    sha256 of every file (what an export without the catalog's digests must read).

    python benchmarks/bench_provenance.py
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROUNDS = 3
FIELDS = int(os.environ.get("DATABACKED_BENCH_CRATE_FIELDS", "3"))


def _median(fn: Callable[[int], float]) -> float:
    return statistics.median(fn(i) for i in range(ROUNDS))


def run() -> list[dict]:
    """Time the crate export of the demo run against copying and hashing its files."""
    import databacked as db
    from databacked.catalog import Catalog
    from databacked.examples import make_plate
    from databacked.examples.cells import cells
    from databacked.integrations.rocrate import export_rocrate

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dataset = make_plate(folder / "raw", fields=FIELDS)
        url = f"sqlite:///{folder / 'catalog.db'}"
        result = db.run(cells, dataset, store=str(folder / "data"), catalog=url, executor="inline")
        assert result.ok
        catalog = Catalog.open(url)
        files = [p for p in (folder / "data").rglob("*") if p.is_file()]
        files += [p for p in (folder / "raw").rglob("*.tiff")]
        size = sum(p.stat().st_size for p in files)

        def export(i: int) -> float:
            start = time.perf_counter()
            export_rocrate(folder / f"crate{i}", catalog, store=str(folder / "data"))
            return time.perf_counter() - start

        def copy_and_sha(i: int) -> float:
            out = folder / f"copy{i}"
            start = time.perf_counter()
            for path in files:
                target = out / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                hashlib.sha256(path.read_bytes()).hexdigest()
            return time.perf_counter() - start

        def no_data(i: int) -> float:
            start = time.perf_counter()
            export_rocrate(folder / f"meta{i}", catalog, store=str(folder / "data"), data=False)
            return time.perf_counter() - start

        def sha_only(_: int) -> float:
            start = time.perf_counter()
            for path in files:
                hashlib.sha256(path.read_bytes()).hexdigest()
            return time.perf_counter() - start

        note = f"{len(result.calls)} calls, {len(files)} files, {size / 1e6:.1f} MB"
        rows = []
        for case, ours_fn, baseline, base_fn in (
            ("export rocrate with data", export, "copy + sha256 of the files", copy_and_sha),
            ("export rocrate --no-data", no_data, "sha256 of the files", sha_only),
        ):
            ours, base = _median(ours_fn), _median(base_fn)
            rows.append(
                {
                    "section": "Provenance",
                    "case": case,
                    "seconds": ours,
                    "baseline": baseline,
                    "baseline_seconds": base,
                    "ratio": ours / base if base else float("nan"),
                    "note": f"{note}, median of {ROUNDS}",
                }
            )
        catalog.close()
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
