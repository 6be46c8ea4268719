"""Catalog speed on SQLite: recording and looking up 10,000 calls, against raw SQLAlchemy.

``record_calls`` writes each call with one output artifact, one output edge and one input
edge: four rows per call, 40,000 in all. The baseline is one raw executemany of the same
number of rows (40,000) into a plain table in the same run, so the ratio shows what the
richer schema, its indexes and insert-or-ignore/upsert cost.
``lookup`` of 10,000 keys (with their outputs joined) is compared with a plain chunked
``SELECT ... WHERE key IN (...)`` over the baseline table.

    python benchmarks/bench_catalog.py
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from databacked.catalog import CallRecord, Catalog, InputRef

N = 10_000
ROUNDS = 3
ROWS_PER_CALL = 4  # call, artifact, output edge, input edge
STORE = "/data/store"


def _key(i: int, salt: str) -> str:
    return hashlib.sha256(f"{salt}/{i}".encode()).hexdigest()


def _records(salt: str) -> list[CallRecord]:
    return [
        CallRecord(
            key=_key(i, salt),
            step="normalize",
            fingerprint="normalize@1",
            store=STORE,
            params={"cell_id": i},
            inputs={"cell": [InputRef(hash=_key(i, "in"), path=f"raw/{i}.tif", store=STORE)]},
            outputs={
                "out": {
                    "path": f"normalized/{i}.ome.tiff",
                    "hash": _key(i, "out"),
                    "size": 4096,
                    "format": "ome-tiff",
                    "stamp": f"m:{i}:{i}",
                    "metadata": {"dims": "CZYX", "shape": [2, 8, 64, 64]},
                }
            },
            started=1.0,
            finished=2.0,
            host="bench",
        )
        for i in range(N)
    ]


def _median(fn: Callable[[int], float]) -> float:
    return statistics.median(fn(round_) for round_ in range(ROUNDS))


def run() -> list[dict]:
    """Time record_calls and lookup of 10,000 calls against raw executemany/SELECT."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        catalog = Catalog.open(f"sqlite:///{folder / 'catalog.db'}")
        plain = sa.create_engine(f"sqlite:///{folder / 'plain.db'}")
        meta = sa.MetaData()
        table = sa.Table(
            "calls",
            meta,
            sa.Column("key", sa.String(80), primary_key=True),
            sa.Column("step", sa.String(255)),
            sa.Column("params", sa.JSON),
            sa.Column("path", sa.Text),
            sa.Column("hash", sa.String(64)),
        )
        meta.create_all(plain)
        with plain.begin() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
        batches = [_records(f"r{round_}") for round_ in range(ROUNDS)]

        def record(round_: int) -> float:
            start = time.perf_counter()
            catalog.record_calls(batches[round_])
            return time.perf_counter() - start

        def raw_insert(round_: int) -> float:
            rows = [
                {
                    "key": f"{r.key}:{part}",
                    "step": r.step,
                    "params": dict(r.params),
                    "path": r.outputs["out"]["path"],
                    "hash": r.outputs["out"]["hash"],
                }
                for r in batches[round_]
                for part in range(ROWS_PER_CALL)
            ]
            start = time.perf_counter()
            with plain.begin() as conn:
                conn.execute(sa.insert(table), rows)
            return time.perf_counter() - start

        def lookup(round_: int) -> float:
            keys = [r.key for r in batches[round_]]
            start = time.perf_counter()
            found = catalog.lookup(keys)
            elapsed = time.perf_counter() - start
            assert len(found) == N
            return elapsed

        def raw_lookup(round_: int) -> float:
            keys = [r.key for r in batches[round_]]
            start = time.perf_counter()
            with plain.connect() as conn:
                rows = []
                for i in range(0, N, 500):
                    chunk = [f"{key}:0" for key in keys[i : i + 500]]
                    query = sa.select(table).where(table.c.key.in_(chunk))
                    rows.extend(conn.execute(query).all())
            elapsed = time.perf_counter() - start
            assert len(rows) == N
            return elapsed

        figures = [
            (
                "record_calls 10,000 calls (+artifacts, edges)",
                record,
                "raw executemany, same rows",
                raw_insert,
            ),
            ("lookup 10,000 keys (with outputs)", lookup, "raw chunked SELECT IN", raw_lookup),
        ]
        results = []
        for case, ours_fn, baseline, base_fn in figures:
            ours, base = _median(ours_fn), _median(base_fn)
            results.append(
                {
                    "section": "Catalog",
                    "case": case,
                    "seconds": ours,
                    "baseline": baseline,
                    "baseline_seconds": base,
                    "ratio": ours / base if base else float("nan"),
                    "note": f"SQLite, median of {ROUNDS}",
                }
            )
        catalog.close()
        plain.dispose()
    return results


if __name__ == "__main__":
    for row in run():
        print(
            f"{row['case']:<48} {row['seconds']:.3f} s   {row['baseline']}: "
            f"{row['baseline_seconds']:.3f} s   ratio {row['ratio']:.2f}x"
        )
