"""Seed 002's plate screen: images arrive site by site, sites are measured, plates reduced.

The pieces ``databacked demo --plate-screen`` and ``examples/plate-screen/`` share:

- ``write_site`` / ``arrive``: synthetic plates written one imaging site at a time (all its
  channels), each file written under a staging name and renamed, as a microscope's upload
  script should, so a watcher never sees half a TIFF;
- ``measure_site`` and ``plate_report``: the two transforms (per site: one CSV row per channel;
  per plate: a summary CSV and a PNG bar chart);
- ``write_project``: a project folder with the two specs naming these transforms;
- ``results``: every measured site of a plate as one pandas DataFrame.

    write_project("screen")
    arrive("screen/data/raw", plates=["plate1"])           # blocks while the images arrive
    df = results("screen/data", plate="plate1")
"""

from __future__ import annotations

import io
import os
import re
import threading
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from databacked.store import Store

WELLS = ("A01", "A02", "B01")
SITES = 2
CHANNELS = 2
SIZE = 64
_CHANNEL = re.compile(r"_w(\d+)\.tiff?$")

SPECS = """\
pipeline: measure
description: One CSV per imaging site, measured once all its channels have arrived.
input:
  group:
    - repo: raw
      glob: "/(*)/(*)_s(*)_w(*).tif"
      names: [plate, well, site, channel]
      group_by: "$1/$2_s$3"
      complete: {{count: {channels}}}
transform:
  python: {module}:measure_site
---
pipeline: plate_report
description: A plate's summary table and plot, once every site of the plate is measured.
input:
  group:
    - repo: measure
      glob: "/(*)/*.csv"
      names: [plate]
      group_by: "$1"
      complete: {{count: {sites}}}
transform:
  python: {module}:plate_report
"""


def spec_text(
    module: str = "databacked.examples.plate_screen",
    *,
    wells: int = len(WELLS),
    sites: int = SITES,
    channels: int = CHANNELS,
) -> str:
    """The two pipelines as YAML, for a plate of ``wells`` x ``sites`` x ``channels`` images."""
    return SPECS.format(module=module, channels=channels, sites=wells * sites)


def write_project(folder: str | os.PathLike[str], **layout: int) -> Path:
    """A project folder: ``pipelines/screen.yml`` (the package's transforms) and ``data/raw/``."""
    root = Path(folder)
    (root / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "pipelines" / "screen.yml").write_text(spec_text(**layout))
    (root / "data" / "raw").mkdir(parents=True, exist_ok=True)
    return root


def site_image(plate: str, well: str, site: int, channel: int) -> np.ndarray:
    """A deterministic 64x64 uint16 field: bright blobs on a noisy background."""
    seed = zlib.crc32(f"{plate}/{well}/{site}/{channel}".encode())
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    image = rng.poisson(100.0, (SIZE, SIZE)).astype(np.float64)
    brightness = 400.0 * (1 + (zlib.crc32(well.encode()) % 5)) / channel
    for cy, cx in rng.uniform(8, SIZE - 8, size=(3 + site, 2)):
        image += brightness * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
    return np.clip(image, 0, 65535).astype(np.uint16)


def write_site(
    raw: str | os.PathLike[str] | Store,
    plate: str,
    well: str,
    site: int,
    channels: int = CHANNELS,
) -> list[str]:
    """Write one site's channels as ``<raw>/<plate>/<well>_s<site>_w<channel>.tif``, atomically.

    ``raw`` is the local ``raw`` folder, or a ``Store`` whose repo ``raw/`` receives them.
    Returns the paths written (the store's URIs for a store).
    """
    import tifffile

    if isinstance(raw, Store):
        uris = []
        for channel in range(1, channels + 1):
            buffer = io.BytesIO()
            tifffile.imwrite(buffer, site_image(plate, well, site, channel))
            path = f"raw/{plate}/{well}_s{site}_w{channel}.tif"
            raw.put_bytes(path, buffer.getvalue())  # atomic: staging name, then rename / PUT
            uris.append(raw.uri(path))
        return uris
    folder = Path(raw) / plate
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for channel in range(1, channels + 1):
        path = folder / f"{well}_s{site}_w{channel}.tif"
        staging = folder / f".databacked-tmp-{path.name}"
        tifffile.imwrite(staging, site_image(plate, well, site, channel))
        os.replace(staging, path)  # a watcher sees the finished file or nothing
        written.append(str(path))
    return written


def arrive(
    raw: str | os.PathLike[str] | Store,
    *,
    plates: Sequence[str] = ("plate1", "plate2"),
    wells: Sequence[str] = WELLS,
    sites: int = SITES,
    channels: int = CHANNELS,
    delay: float = 0.2,
    stop: threading.Event | None = None,
) -> int:
    """Write the plates site by site, ``delay`` seconds apart; returns the sites written."""
    stop = stop or threading.Event()
    count = 0
    for plate in plates:
        for well in wells:
            for site in range(1, sites + 1):
                if stop.wait(delay):
                    return count
                write_site(raw, plate, well, site, channels)
                count += 1
    return count


def measure_site(files: Mapping[str, Path], plate: str, well: str, site: str) -> dict[str, Any]:
    """One row per channel: mean intensity and the fraction of pixels above background."""
    import tifffile

    rows = []
    for name, path in sorted(files.items()):
        match = _CHANNEL.search(name)
        image = tifffile.imread(path).astype(np.float64)
        threshold = np.median(image) + 3 * image.std(ddof=0) / 2
        rows.append(
            {
                "plate": plate,
                "well": well,
                "site": int(site),
                "channel": int(match.group(1)) if match else name,
                "mean_intensity": round(float(image.mean()), 3),
                "foreground_fraction": round(float((image > threshold).mean()), 5),
            }
        )
    return {f"{plate}/{well}_s{site}.csv": rows}


def plate_report(files: Mapping[str, Path], plate: str) -> dict[str, Any]:
    """A plate's sites reduced per well and channel into a table, and a bar chart of it."""
    import pandas as pd

    from databacked.examples.plot import bar_chart

    table = pd.concat([pd.read_csv(p) for _, p in sorted(files.items())], ignore_index=True)
    summary = (
        table.groupby(["plate", "well", "channel"], as_index=False)
        .agg(sites=("site", "nunique"), mean_intensity=("mean_intensity", "mean"))
        .round({"mean_intensity": 3})
    )
    first = table[table["channel"] == table["channel"].min()]
    groups = {str(w): list(g["mean_intensity"]) for w, g in first.groupby("well", sort=True)}
    plot = bar_chart(groups, title=f"{plate}: mean intensity per site, channel 1")
    return {f"{plate}/summary.csv": summary, f"{plate}/plot.png": plot}


def results(store: Any, plate: str | None = None, pipeline: str = "measure") -> Any:
    """Every measured site (of ``plate``, else all plates) as one pandas DataFrame.

    ``store`` is a ``Store`` or its URL (a local folder or ``s3://...``).
    """
    import pandas as pd

    store = Store.from_url(store)
    prefix = f"{pipeline}/{plate}" if plate else pipeline
    paths = sorted(i.path for i in store.list(prefix) if i.path.endswith(".csv"))
    frames = []
    for path in paths:
        with store.open(path) as fh:
            frames.append(pd.read_csv(fh))
    if not frames:
        return pd.DataFrame(
            columns=["plate", "well", "site", "channel", "mean_intensity", "foreground_fraction"]
        )
    return pd.concat(frames, ignore_index=True)


__all__ = [
    "arrive",
    "measure_site",
    "plate_report",
    "results",
    "site_image",
    "spec_text",
    "write_project",
    "write_site",
]
