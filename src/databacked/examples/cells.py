"""Seed 000's pipeline on the public API: select cells, normalise, project, measure, report.

Every step is a plain function; the decorator says where its result lives and in which
format. ``make_plate`` gives a matching dataset table (one row per cell).

    dataset = make_plate("raw")
    result = db.run(cells, dataset, store="data")
    result.value["summary"].load()      # the summary table, from data/summary.csv
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import databacked as db
from databacked.examples.plot import bar_chart

CHANNELS = ["dna", "membrane"]
PIXEL_AREA_UM2 = 0.65**2  # the synthetic plate's pixel size, squared


def _leading_squeezed(image: np.ndarray) -> np.ndarray:
    """Drop singleton leading axes (T, and Z for 2-D data) so a TCZYX read becomes CYX."""
    image = np.asarray(image)
    while image.ndim > 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim == 4 and image.shape[1] == 1:  # CZYX with one plane
        image = image[:, 0]
    return image


@db.step
def select_cell(fov: db.File, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Load one field of view (any format bioio reads) and cut out one cell's box, CYX."""
    image = _leading_squeezed(db.load(fov))
    return np.ascontiguousarray(image[..., y0:y1, x0:x1])


@db.step(
    target="normalized/{cell_id}.ome.tiff",
    format=db.OmeTiff(dims="CYX", channel_names=CHANNELS),
)
def normalize(cell_id: str, cell: np.ndarray) -> np.ndarray:
    """Scale each channel to [0, 1] between its 1st and 99.9th percentile, as float32."""
    cell = _leading_squeezed(cell).astype(np.float32)
    flat = cell.reshape(cell.shape[0], -1)
    low = np.percentile(flat, 1, axis=1).reshape(-1, *[1] * (cell.ndim - 1))
    high = np.percentile(flat, 99.9, axis=1).reshape(-1, *[1] * (cell.ndim - 1))
    # A flat channel (high == low) becomes zeros instead of a division by zero.
    scale = np.where(high > low, high - low, 1.0)
    return np.clip((cell - low) / scale, 0.0, 1.0).astype(np.float32)


@db.step(target="projections/{cell_id}.png")
def project(cell_id: str, normed: np.ndarray) -> np.ndarray:
    """Maximum over channels (and Z), as an 8-bit image ready to look at."""
    normed = np.asarray(normed, dtype=np.float32)
    flat = normed.reshape(-1, *normed.shape[-2:]).max(axis=0)
    return np.rint(np.clip(flat, 0.0, 1.0) * 255).astype(np.uint8)


@db.step
def measure(cell_id: str, plate: str, well: str, field: int, cell: np.ndarray) -> dict[str, Any]:
    """One row of measurements of one cell from its raw pixels (CYX: dna, membrane)."""
    cell = _leading_squeezed(cell).astype(np.float64)
    dna = cell[0].reshape(-1, *cell.shape[-2:]).max(axis=0)
    # The box's border is background: nuclei sit in the middle of their box.
    border = np.concatenate([dna[0], dna[-1], dna[:, 0], dna[:, -1]])
    background = float(np.median(border))
    nucleus = dna > background + 0.5 * (dna.max() - background)
    row: dict[str, Any] = {
        "cell_id": cell_id,
        "plate": plate,
        "well": well,
        "field": int(field),
        "nucleus_area_px": int(nucleus.sum()),
        "nucleus_area_um2": round(float(nucleus.sum()) * PIXEL_AREA_UM2, 3),
        "dna_mean": round(float(dna[nucleus].mean() - background), 3),
        "dna_total": round(float((dna[nucleus] - background).sum()), 1),
    }
    if cell.shape[0] > 1:
        membrane = cell[1].reshape(-1, *cell.shape[-2:]).max(axis=0)
        row["membrane_mean"] = round(float(membrane.mean()), 3)
    return row


@db.step(target="summary.csv")
def summarize(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """All cells' measurements in one table, one row per cell, sorted by cell id."""
    table = pd.DataFrame([dict(r) for r in rows])
    return table.sort_values("cell_id", kind="stable").reset_index(drop=True)


@db.step(target="plots/{plate}.png")
def plate_plot(plate: str, summary: pd.DataFrame) -> np.ndarray:
    """A bar per well: mean nucleus area of the plate's cells, each cell a dot."""
    cells_of_plate = summary[summary["plate"] == plate]
    groups = {
        str(well): cells_of_plate.loc[cells_of_plate["well"] == well, "nucleus_area_um2"]
        .astype(float)
        .tolist()
        for well in sorted(cells_of_plate["well"].unique())
    }
    return bar_chart(groups, title=f"{plate}: nucleus area per well (um^2)")


@db.pipeline
def cells(dataset: pd.DataFrame) -> dict[str, Any]:
    """Seed 000 end to end: one crop, normalised cell, projection and row per cell."""
    crops = select_cell.map(
        fov=dataset.fov_path, y0=dataset.y0, y1=dataset.y1, x0=dataset.x0, x1=dataset.x1
    )
    normed = normalize.map(cell_id=dataset.cell_id, cell=crops)
    projections = project.map(cell_id=dataset.cell_id, normed=normed)
    rows = measure.map(
        cell_id=dataset.cell_id,
        plate=dataset.plate,
        well=dataset.well,
        field=dataset.field,
        cell=crops,
    )
    summary = summarize(rows=rows)
    plots = [plate_plot(plate=p, summary=summary) for p in sorted(dataset.plate.unique())]
    return {"summary": summary, "projections": projections, "plots": plots}
