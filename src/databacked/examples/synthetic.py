"""A small, realistic, deterministic plate: cells as gaussian blobs on camera noise.

Each field of view is a multi-channel OME-TIFF: nuclei in the first channel ("dna"),
a ring of membrane around each nucleus in the second, a faint cytoplasm in any further
channel, on a Poisson photon background with gaussian read noise, as uint16. Every field
draws from its own ``numpy.random.default_rng`` seeded by (seed, plate, well, field), so a
field's pixels do not depend on which other wells or fields are generated, and the same
arguments give byte-identical files.

    dataset = make_plate("raw")          # raw/plate1/A01_s1.ome.tiff ... and one row per cell
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import databacked as db

# Bump when the pixels a given set of arguments produces change, so old plates are rewritten.
GENERATOR = "databacked.examples.synthetic/2"
MANIFEST = "manifest.json"
_NAME = re.compile(r"[A-Za-z0-9_-]+")
PIXEL_SIZE_UM = 0.65  # a 20x objective on a common sCMOS camera
HALF_BOX = 20  # half the side of a cell's bounding box, in pixels
_CELLS_PER_256_SQUARED = 6
_BACKGROUND = 100.0  # photons per pixel
_READ_NOISE = 4.0

COLUMNS = [
    "plate",
    "well",
    "field",
    "fov_path",
    "cell_index",
    "cell_id",
    "y0",
    "y1",
    "x0",
    "x1",
]


@dataclass(frozen=True, slots=True)
class _Cell:
    """One generated cell: where it is and how it looks."""

    cy: int
    cx: int
    nucleus_sigma: float
    nucleus_amplitude: float
    membrane_radius: float
    membrane_amplitude: float
    aspect: float
    angle: float


def make_plate(
    folder: str | Path,
    *,
    plate: str = "plate1",
    wells: Sequence[str] = ("A01", "A02", "B01", "B02"),
    fields: int = 2,
    channels: Sequence[str] = ("dna", "membrane"),
    size: tuple[int, int] = (256, 256),
    seed: int = 0,
) -> pd.DataFrame:
    """Write a plate of fields of view under ``folder/plate/`` and return one row per cell.

    Files that are already there from the same arguments are left untouched (same bytes,
    same modification time), so a second call is cheap and invalidates no cache.

    >>> dataset = make_plate(tmp_path, wells=["A01"], fields=1)
    >>> list(dataset.columns[:4])
    ['plate', 'well', 'field', 'fov_path']
    """
    height, width = (int(n) for n in size)
    if height < 2 * HALF_BOX or width < 2 * HALF_BOX:
        raise ValueError(
            f"size={size!r} is too small for a cell; use at least {2 * HALF_BOX} pixels a side."
        )
    if fields < 1 or not wells or not channels:
        raise ValueError("make_plate needs at least one well, one field and one channel.")
    bad = [name for name in (plate, *wells) if not _NAME.fullmatch(str(name))]
    if bad:
        raise ValueError(
            f"Plate and well names become file names; {bad[0]!r} is not one: "
            "use letters, digits, '-' and '_' only."
        )
    channels = [str(c) for c in channels]
    plate_dir = Path(folder).resolve() / plate
    plate_dir.mkdir(parents=True, exist_ok=True)
    params = {
        "generator": GENERATOR,
        "plate": plate,
        "channels": channels,
        "size": [height, width],
        "seed": int(seed),
    }
    known = _read_manifest(plate_dir, params)
    written: dict[str, str] = {}
    rows = []
    for well in wells:
        well_factor = _well_factor(seed, plate, well)
        for field in range(1, fields + 1):
            rng = np.random.default_rng([int(seed), _crc(plate), _crc(well), field])
            cells = _place_cells(rng, height, width, well_factor)
            name = f"{well}_s{field}.ome.tiff"
            path = plate_dir / name
            recorded = known.get(name)
            if recorded is None or not _is_current(path, recorded):
                image = _render(rng, cells, len(channels), height, width)
                recorded = _write_fov(path, image, channels)
            written[name] = recorded
            for index, cell in enumerate(cells):
                rows.append(
                    {
                        "plate": plate,
                        "well": well,
                        "field": field,
                        "fov_path": str(path),
                        "cell_index": index,
                        "cell_id": f"{plate}_{well}_s{field}_c{index:02d}",
                        "y0": cell.cy - HALF_BOX,
                        "y1": cell.cy + HALF_BOX,
                        "x0": cell.cx - HALF_BOX,
                        "x1": cell.cx + HALF_BOX,
                    }
                )
    _write_manifest(plate_dir, params, {**known, **written})
    return pd.DataFrame(rows, columns=COLUMNS)


def _crc(text: str) -> int:
    # A stable integer per name (hash() is salted per process).
    return zlib.crc32(text.encode())


def _well_factor(seed: int, plate: str, well: str) -> float:
    """How much bigger and brighter this well's nuclei are: the 'treatment' the plot shows."""
    return float(np.random.default_rng([int(seed), _crc(plate), _crc(well)]).uniform(0.8, 1.3))


def _place_cells(
    rng: np.random.Generator, height: int, width: int, well_factor: float
) -> list[_Cell]:
    """Non-overlapping cells whose bounding boxes lie wholly inside the field."""
    wanted = max(1, round(_CELLS_PER_256_SQUARED * height * width / 256**2))
    wanted = max(1, wanted + int(rng.integers(-1, 2)))
    cells: list[_Cell] = []
    for _ in range(50 * wanted):
        if len(cells) == wanted:
            break
        cy = int(rng.integers(HALF_BOX, height - HALF_BOX + 1))
        cx = int(rng.integers(HALF_BOX, width - HALF_BOX + 1))
        if any((c.cy - cy) ** 2 + (c.cx - cx) ** 2 < (2 * HALF_BOX - 4) ** 2 for c in cells):
            continue
        cells.append(
            _Cell(
                cy=cy,
                cx=cx,
                nucleus_sigma=float(rng.uniform(3.8, 4.4) * well_factor),
                nucleus_amplitude=float(rng.uniform(600, 900) * well_factor),
                membrane_radius=float(rng.uniform(12.5, 15.0)),
                membrane_amplitude=float(rng.uniform(250, 400)),
                aspect=float(rng.uniform(0.8, 1.2)),
                angle=float(rng.uniform(0, np.pi)),
            )
        )
    return cells


def _render(
    rng: np.random.Generator, cells: list[_Cell], n_channels: int, height: int, width: int
) -> np.ndarray:
    """The expected photon counts of every channel, then camera noise, as CYX uint16."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    signal = np.full((n_channels, height, width), _BACKGROUND)
    for cell in cells:
        # Elliptic radius: rotate into the cell's frame and stretch one axis.
        dy, dx = yy - cell.cy, xx - cell.cx
        cos, sin = np.cos(cell.angle), np.sin(cell.angle)
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos
        radius = np.hypot(u / cell.aspect, v * cell.aspect)
        signal[0] += cell.nucleus_amplitude * np.exp(-(radius**2) / (2 * cell.nucleus_sigma**2))
        if n_channels > 1:
            ring = np.exp(-((radius - cell.membrane_radius) ** 2) / (2 * 1.8**2))
            signal[1] += cell.membrane_amplitude * ring
        inside = 40.0 / (1 + np.exp(radius - cell.membrane_radius))
        for channel in range(1, n_channels):
            signal[channel] += inside
    counts = rng.poisson(signal) + rng.normal(0.0, _READ_NOISE, signal.shape)
    return np.clip(np.rint(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def _write_fov(path: Path, image: np.ndarray, channels: list[str]) -> str:
    """Write one field as OME-TIFF (atomically, byte-deterministic); returns its content hash."""
    fmt = db.OmeTiff(
        dims="CYX",
        channel_names=channels,
        physical_pixel_sizes=(None, PIXEL_SIZE_UM, PIXEL_SIZE_UM),
    )
    return db.save(image, str(path), format=fmt).hash


def _hash(path: Path) -> str:
    return db.hash_file(str(path))


def _is_current(path: Path, recorded_hash: str) -> bool:
    """True when ``path`` holds exactly what the manifest says these arguments wrote."""
    return path.is_file() and _hash(path) == recorded_hash


def _read_manifest(plate_dir: Path, params: dict) -> dict[str, str]:
    try:
        manifest = json.loads((plate_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if manifest.get("params") != params:
        return {}
    return dict(manifest.get("files", {}))


def _write_manifest(plate_dir: Path, params: dict, files: dict[str, str]) -> None:
    text = json.dumps({"params": params, "files": dict(sorted(files.items()))}, indent=2)
    tmp = plate_dir / f".{MANIFEST}.tmp"
    tmp.write_text(text + "\n")
    tmp.replace(plate_dir / MANIFEST)
