"""databacked's runner for the peers' shared workload (../shared/peers/common.py).

    python run_databacked.py --data D --out O                      # 200 FOVs: 601 calls
    python run_databacked.py --workload overhead --n 1000 --out O  # trivial persisted calls

Same steps, same files as every peer (norm/*.tif, png/*.png, meas/*.csv, measurements.csv),
written as a scientist would write them with databacked: plain functions, targets, formats.
The store is OUT, the catalog is OUT/.databacked/catalog.db, the executor `processes`.
"""

from __future__ import annotations

import argparse
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("PEERS_DIR", os.path.join(_HERE, "..", "..", "shared", "peers")))

import common  # noqa: E402  (the peers' workload module, found through PEERS_DIR)

import databacked as db  # noqa: E402


@db.step(target="norm/{name}.tif", format=db.Tiff())
def normalize(name: str, src: db.File):
    """Raw TIFF -> per-channel percentile-normalised float32 TIFF."""
    return common.normalize(common.load(src))


@db.step(target="png/{name}.png")
def project(name: str, norm):
    """Max projection over channels as an 8-bit PNG."""
    return common.max_project_uint8(norm)


@db.step(target="meas/{name}.csv")
def measure(name: str, norm):
    """One-row table of per-channel measurements."""
    return [common.measure(norm, name)]


@db.step(target="measurements.csv")
def reduce(tables):
    """All per-image rows in one table."""
    import pandas as pd

    return pd.concat(tables, ignore_index=True)


@db.pipeline
def images(paths: list[str]):
    names = [common.stem(p) for p in paths]
    norm = normalize.map(name=names, src=paths)
    project.map(name=names, norm=norm)
    tables = measure.map(name=names, norm=norm)
    return reduce(tables=tables)


@db.step(target="ovh/{i}.json")
def inc(i: int) -> int:
    """The trivial task of the overhead workload."""
    return common.inc(i)


@db.pipeline
def overhead(n: int):
    return inc.map(i=list(range(n)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workload", choices=["images", "overhead"], default="images")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--data")
    p.add_argument("--out", required=True)
    p.add_argument("--executor", default="processes")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    catalog = f"sqlite:///{os.path.abspath(a.out)}/.databacked/catalog.db"
    if a.workload == "overhead":
        pipeline, args = overhead, (a.n or 1000,)
    else:
        pipeline, args = images, (common.list_inputs(a.data, a.n),)
    result = db.run(
        pipeline, *args, store=a.out, catalog=catalog, executor=a.executor, workers=a.workers
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
