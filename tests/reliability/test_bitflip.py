"""One flipped bit in a stored file (its mtime put back, as silent corruption leaves it) is
caught by ``verify``, by ``load(verify=True)`` and by ``db.run(verify=True)``, which
recomputes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from reliability_report import Campaign

import databacked as db
from databacked.engine.housekeeping import verify

HERE = Path(__file__).parent


def _flip(path: Path, offset_from_end: int = 1) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _victims(store: Path) -> dict[str, Path]:
    """One file per kind of output: the artifact path -> the file whose bit is flipped."""
    files = sorted((store / "zarr/0.ome.zarr").rglob("*"))
    chunk = next(p for p in files if p.is_file() and "c" in p.parts)
    npy = next((store / ".databacked/objects").rglob("*.npy"))
    return {
        "img/0.ome.tiff": store / "img/0.ome.tiff",
        "zarr/0.ome.zarr": chunk,
        "tables/0.csv": store / "tables/0.csv",
        "summary.json": store / "summary.json",
        str(npy.relative_to(store)): npy,
    }


def test_flipped_bits_are_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, campaign: Campaign
) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("CAMPAIGN_COUNT_FILE", str(tmp_path / "count"))
    import campaign_app as app

    store, catalog = str(tmp_path / "data"), f"sqlite:///{tmp_path}/catalog.db"
    first = db.run(app.campaign, 1, store=store, catalog=catalog, executor="inline")
    assert first.ok
    victims = _victims(Path(store))
    for path in victims.values():
        _flip(path)
    with db.Catalog.open(catalog) as cat:
        report = verify(db.Store(store), cat)
    assert set(report.corrupt) == set(victims), report
    missed = len(set(victims) - set(report.corrupt))

    # load(verify=True) on the recorded handles refuses every flipped artifact
    with db.Catalog.open(catalog) as cat:
        rows = {row.path: row for row in cat.artifacts(str(Path(store).resolve()))}
    for rel in victims:
        handle = db.Artifact(db.Store(store), rel, hash=rows[rel].hash)
        with pytest.raises(db.IntegrityError, match="changed since it was recorded"):
            handle.load(verify=True)

    # a verifying run recomputes exactly the calls whose outputs were flipped
    again = db.run(app.campaign, 1, store=store, catalog=catalog, executor="inline", verify=True)
    assert again.ok
    ran = {
        p
        for outs, status in zip(again.calls["outputs"], again.calls["status"], strict=True)
        if status == "ran"
        for p in outs.values()
    }
    assert set(victims) <= ran
    with db.Catalog.open(catalog) as cat:
        assert verify(db.Store(store), cat).ok
    campaign.add(
        "bit flipped in a stored file",
        faults=len(victims),
        lost_or_corrupt=missed,
        note="caught by verify, load(verify=True) and run(verify=True)",
    )
