"""The pipeline the crash campaign kills and resumes: every kind of write databacked does.

Run as a script: ``python campaign_app.py run|check FOLDER VERSION EXECUTOR [--no-exchange]``.
``run`` runs the pipeline (the campaign arms a crash point in the environment); ``check``
first reads every target as a user would (each must hold a complete known version),
then runs the pipeline again and prints a JSON report: which calls recorded before this run
were computed again, what ``verify`` found, and whether every output loads to the value its
version must have. Outputs: an OME-TIFF (seekable writer), an OME-Zarr (folder swap), a CSV
(stream writer), an object-area ``.npy`` (no target) and a JSON reducer.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import pandas as pd

import databacked as db

N = 3


def image(i: int, version: int) -> np.ndarray:
    """The pixels every version of image ``i`` must hold."""
    base = np.arange(2 * 24 * 24, dtype=np.uint16).reshape(2, 24, 24)
    return (base * (i + 1) + version * 7).astype(np.uint16)


def _count(name: str, i: Any, version: int) -> None:
    with open(os.environ["CAMPAIGN_COUNT_FILE"], "a") as f:
        f.write(f"{name} {i} {version}\n")


@db.step(target="img/{i}.ome.tiff", format=db.OmeTiff(dims="CYX"))
def tiff(i: int, version: int) -> np.ndarray:
    _count("tiff", i, version)
    return image(i, version)


@db.step(target="zarr/{i}.ome.zarr", format=db.OmeZarr(dims="CYX", chunks=(1, 12, 12)))
def zarr_image(i: int, version: int) -> np.ndarray:
    _count("zarr", i, version)
    return image(i, version) + 1


@db.step(target="tables/{i}.csv")
def table(i: int, version: int, img: np.ndarray) -> pd.DataFrame:
    _count("table", i, version)
    return pd.DataFrame({"channel": [0, 1], "total": [int(img[c].sum()) for c in range(2)]})


@db.step
def blob(i: int, version: int) -> np.ndarray:
    _count("blob", i, version)
    return np.full(100, i * 1000 + version, dtype=np.int64)


@db.step(target="summary.json")
def summary(version: int, tables: list[pd.DataFrame], blobs: list[np.ndarray]) -> dict:
    _count("summary", "-", version)
    return {
        "version": version,
        "totals": [int(t["total"].sum()) for t in tables],
        "blobs": [int(b[0]) for b in blobs],
    }


@db.pipeline
def campaign(version: int):
    ids = list(range(N))
    imgs = tiff.map(i=ids, version=[version] * N)
    zarr_image.map(i=ids, version=[version] * N)
    tables = table.map(i=ids, version=[version] * N, img=imgs)
    blobs = blob.map(i=ids, version=[version] * N)
    return summary(version=version, tables=tables, blobs=blobs)


def expected_summary(version: int) -> dict:
    totals = [int(image(i, version).astype(np.int64).sum()) for i in range(N)]
    return {"version": version, "totals": totals, "blobs": [i * 1000 + version for i in range(N)]}


def _targets_readable(store: str, version: int) -> list[str]:
    """Every target (all exist after version 1) holds exactly the previous or the new version."""
    problems = []
    for i in range(N):
        for path, value in ((f"img/{i}.ome.tiff", image), (f"zarr/{i}.ome.zarr", None)):
            full = os.path.join(store, path)
            try:
                got = db.load(full)
            except db.DatabackedError as exc:
                problems.append(f"{path}: {type(exc).__name__}: {exc}")
                continue
            ok = False
            for v in (version - 1, version):
                want = image(i, v) if value is not None else image(i, v) + 1
                ok = ok or (got.shape == want.shape and bool((got == want).all()))
            if not ok:
                problems.append(f"{path}: holds neither version {version - 1} nor {version}")
    return problems


def check(folder: str, version: int, executor: str) -> dict:
    store, catalog = os.path.join(folder, "data"), f"sqlite:///{folder}/catalog.db"
    readable = _targets_readable(store, version)
    planned = db.plan(campaign, version, store=store, catalog=catalog)
    keys = list(planned.calls["key"])
    with db.Catalog.open(catalog) as cat:
        recorded = set(cat.lookup(keys))
    result = db.run(campaign, version, store=store, catalog=catalog, executor=executor)
    calls = result.calls
    recomputed = sorted(set(calls[calls["status"] == "ran"]["key"]) & recorded)
    from databacked.engine.housekeeping import verify

    with db.Catalog.open(catalog) as cat:
        report = verify(db.Store(store), cat)
    corrupt: list[str] = []
    value = result.value
    if value.load(verify=True) != expected_summary(version):
        corrupt.append("summary.json")
    for i in range(N):
        for path, want in (
            (f"img/{i}.ome.tiff", image(i, version)),
            (f"zarr/{i}.ome.zarr", image(i, version) + 1),
        ):
            got = db.load(os.path.join(store, path))
            if got.shape != want.shape or not bool((got == want).all()):
                corrupt.append(path)
    return {
        "ok": bool(result.ok),
        "summary": result.summary(),
        "calls": len(calls),
        "recorded_before": len(recorded),
        "recomputed_recorded": recomputed,
        "verify_corrupt": list(report.corrupt),
        "verify_missing": list(report.missing),
        "wrong_values": corrupt,
        "unreadable_before_resume": readable,
    }


def main(argv: list[str]) -> None:
    mode, folder, version, executor = argv[:4]
    if "--no-exchange" in argv:
        # a filesystem without renameat2(RENAME_EXCHANGE): the moved-aside fallback
        import databacked.store.folders as folders

        folders.exchange = lambda a, b: False  # type: ignore[assignment]
    store, catalog = os.path.join(folder, "data"), f"sqlite:///{folder}/catalog.db"
    if mode == "run":
        result = db.run(campaign, int(version), store=store, catalog=catalog, executor=executor)
        sys.exit(0 if result.ok else 1)
    print(json.dumps(check(folder, int(version), executor)))


if __name__ == "__main__":
    main(sys.argv[1:])
