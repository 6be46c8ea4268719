"""Helpers of the analysisrun tests: synthetic image-analysis results, the example script's
runner, tars made by hand."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

EXAMPLE = Path(__file__).with_name("example.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def write_data(folder: Path, lanes: int = 3, *, bump: str | None = None) -> Path:
    """as.csv / ss.csv (two entities plus noise) and samples.csv for ``lanes`` lanes.

    ``bump``: a data name whose activity-spot values are changed (one lane's new data).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    rows: dict[str, list[dict[str, object]]] = {"as": [], "ss": []}
    for lane in range(1, lanes + 1):
        name = f"{lane:04d}"
        for field in range(1, 13):
            for _ in range(int(rng.integers(1, 5))):
                value = float(rng.normal(10, 2))
                if name == bump:
                    value += 1.0
                file = f"spotfinder_000_{name}.tif"
                rows["as"].append(
                    {
                        "MultiPointIndex": field,
                        "Entity": "Activity Spots",
                        "Value": value,
                        "Filename": file,
                    }
                )
                rows["ss"].append(
                    {
                        "MultiPointIndex": field,
                        "Entity": "Surrounding Spots",
                        "Value": value / 2,
                        "Filename": file,
                    }
                )
                rows["as"].append(
                    {"MultiPointIndex": field, "Entity": "Noise", "Value": 0.0, "Filename": file}
                )
    for key, table in rows.items():
        pd.DataFrame(table).to_csv(folder / f"{key}.csv", index=False)
    pd.DataFrame(
        {
            "data": [f"{i:04d}" for i in range(1, lanes + 1)],
            "sample": [f"S{i}" for i in range(1, lanes + 1)],
        }
    ).to_csv(folder / "samples.csv", index=False)
    return folder


def script_env(data: Path, out: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "ANALYSISRUN_METHOD",
        "ANALYSISRUN_MODE",
        "PSEUDO_NBENV",
        "ANALYSISRUN_ENCODING",
        "EXAMPLE_FAIL_LANE",
        "EXAMPLE_PARAM1",
    ):
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.update(
        EXAMPLE_DATA=str(data),
        EXAMPLE_OUT=str(out),
        EXAMPLE_LOG=str(out / "lanes.log"),
        ANALYSISRUN_LANG="ja",
        MPLBACKEND="Agg",
    )
    env.update(extra)
    return env


def run_script(
    data: Path, out: Path, *, stdin: bytes = b"", script: Path = EXAMPLE, **extra: str
) -> subprocess.CompletedProcess[bytes]:
    """Run the example as ``python example.py`` with EXAMPLE_* pointing at data and out."""
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(script)],
        input=stdin,
        capture_output=True,
        env=script_env(data, out, **extra),
        cwd=out,
        timeout=240,
        check=False,
    )


def make_tar(entries: Mapping[str, bytes]) -> bytes:
    """A tar built by hand, as an orchestrator would."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def read_tar(data: bytes) -> dict[str, bytes]:
    """Every member of an answer tar (tarfile itself: the answer must be a clean tar)."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            handle = tar.extractfile(member)
            assert handle is not None
            out[member.name] = handle.read()
    return out


def lane_log(out: Path) -> list[str]:
    path = out / "lanes.log"
    return path.read_text().split("\n")[:-1] if path.exists() else []
