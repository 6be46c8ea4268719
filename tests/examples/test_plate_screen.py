"""The shipped plate-screen example (seed 002): its specs, its CellProfiler variant, the demo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from databacked.catalog import Catalog
from databacked.cli.app import app
from databacked.examples import plate_screen as ps
from databacked.specs.runner import run_specs
from databacked.store import Store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plate-screen"
DATABACKED = str(Path(sys.executable).with_name("databacked"))

# Takes CellProfiler's headless arguments and writes one table per site as a pipeline whose
# ExportToSpreadsheet writes into \g<Plate>/ with the prefix \g<Well>_s\g<Site>_ would.
STAND_IN = """
import argparse, csv, pathlib, re, sys

import tifffile

parser = argparse.ArgumentParser()
parser.add_argument("-c", action="store_true")
parser.add_argument("-r", action="store_true")
parser.add_argument("-p", required=True)
parser.add_argument("-i", required=True)
parser.add_argument("-o", required=True)
args = parser.parse_args()
if not args.c or not args.r or not pathlib.Path(args.p).is_file():
    sys.exit("usage: cellprofiler -c -r -p PIPELINE.cppipe -i INPUT -o OUTPUT")
rows = []
for tif in sorted(pathlib.Path(args.i).rglob("*.tif")):
    well, site, channel = re.fullmatch(r"(\\w+)_s(\\d+)_w(\\d+)\\.tif", tif.name).groups()
    plate = tif.parent.name
    rows.append([plate, well, site, channel, float(tifffile.imread(tif).mean())])
out = pathlib.Path(args.o) / plate
out.mkdir(parents=True, exist_ok=True)
with open(out / f"{well}_s{site}_Image.csv", "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(["plate", "well", "site", "channel", "mean_intensity"])
    writer.writerows(rows)
"""


def _plate(raw: Path | Store, plate: str, wells: tuple[str, ...] = ps.WELLS) -> None:
    for well in wells:
        for site in (1, 2):
            ps.write_site(raw, plate, well, site)


def test_example_measures_sites_and_reports_only_complete_plates(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    _plate(store, "plate1")
    _plate(store, "plate2", wells=("A01", "A02"))  # 4 of 6 sites: not complete
    with Catalog.open(tmp_path / "catalog.db") as cat:
        result = run_specs(EXAMPLE / "pipelines", store=store, catalog=cat)
        again = run_specs(EXAMPLE / "pipelines", store=store, catalog=cat)
        [row] = cat.lineage(store.url, "measure/plate1/B01_s2.csv")[:1]

    assert result.ok, result.rows
    assert result.counts() == {"measure": {"ran": 10}, "plate_report": {"ran": 1, "waiting": 1}}
    assert again.counts() == {
        "measure": {"cached": 10},
        "plate_report": {"cached": 1, "waiting": 1},
    }
    assert store.exists("plate_report/plate1/plot.png")
    assert not store.exists("plate_report/plate2")
    summary = pd.read_csv(store.local_path("plate_report/plate1/summary.csv"))
    assert summary["sites"].tolist() == [2] * 6  # 3 wells x 2 channels, 2 sites each
    frame = ps.results(store, plate="plate1")
    assert len(frame) == 12 and set(frame["well"]) == set(ps.WELLS)
    assert row.call is not None
    assert row.call.params["attributes"] == {"plate": "plate1", "well": "B01", "site": "2"}


def test_cellprofiler_variant_runs_its_command_per_site(tmp_path: Path) -> None:
    project = tmp_path / "screen"
    (project / "pipelines").mkdir(parents=True)
    shutil.copy(EXAMPLE / "site.cppipe", project)
    shutil.copy(EXAMPLE / "plate_screen_steps.py", project)  # plate_report's transform
    shutil.copy(EXAMPLE / "pipelines" / "plate_report.yml", project / "pipelines")
    (project / "cellprofiler_stand_in.py").write_text(STAND_IN)
    spec = (EXAMPLE / "measure-cellprofiler.yml").read_text()
    assert "cmd: [cellprofiler, -c, -r, -p, site.cppipe" in spec
    spec = spec.replace("[cellprofiler,", f"[{sys.executable}, cellprofiler_stand_in.py,")
    (project / "pipelines" / "measure.yml").write_text(spec)
    store = Store(tmp_path / "data")
    _plate(store, "plate1")

    result = run_specs(project / "pipelines", store=store, catalog=tmp_path / "catalog.db")

    assert result.ok, [r.error for r in result.rows if r.error]
    assert result.counts()["measure"] == {"ran": 6}
    table = pd.read_csv(store.local_path("measure/plate1/A02_s1_Image.csv"))
    assert table[["well", "site", "channel"]].values.tolist() == [["A02", 1, 1], ["A02", 1, 2]]
    assert store.exists("plate_report/plate1/plot.png")


def test_a_failing_command_reports_its_stderr(tmp_path: Path) -> None:
    project = tmp_path / "screen"
    (project / "pipelines").mkdir(parents=True)
    spec = (EXAMPLE / "measure-cellprofiler.yml").read_text()
    (project / "pipelines" / "measure.yml").write_text(
        spec.replace("[cellprofiler,", f"[{sys.executable}, no_such_stand_in.py,")
    )
    store = Store(tmp_path / "data")
    ps.write_site(store, "plate1", "A01", 1)

    result = run_specs(project / "pipelines", store=store, catalog=tmp_path / "catalog.db")

    [row] = result.rows
    assert row.status == "failed"
    assert "no_such_stand_in.py" in row.error


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_spec_schema_prints_json_schema() -> None:
    code, out = _cli("spec", "schema")
    schema = json.loads(out)
    assert code == 0
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"pipeline", "input", "transform"} <= set(schema["properties"])


def test_spec_check_lists_pipelines_and_rejects_bad_specs(tmp_path: Path) -> None:
    code, out = _cli("spec", "check", str(EXAMPLE / "pipelines"))
    assert code == 0, out
    assert "measure" in out and "plate_report" in out

    bad = tmp_path / "pipelines"
    bad.mkdir()
    (bad / "m.yml").write_text(
        (EXAMPLE / "pipelines" / "measure.yml").read_text().replace("glob:", "glb:")
    )
    code, out = _cli("spec", "check", str(bad))
    assert code == 2
    assert "glb" in out and "did you mean 'glob'" in out
    assert "Traceback" not in out


def test_spec_run_then_plan_from_the_cli(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    _plate(store, "plate1")
    flags = ["--store", str(tmp_path / "data"), "--catalog", f"sqlite:///{tmp_path / 'c.db'}"]

    code, out = _cli("spec", "run", str(EXAMPLE / "pipelines"), "--executor", "inline", *flags)
    assert code == 0, out
    code, out = _cli("spec", "plan", str(EXAMPLE / "pipelines"), *flags)
    assert code == 0, out
    assert "new" not in out and out.count("cached") >= 7  # 6 sites + 1 plate, and the totals


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_demo_plate_screen_ends_with_queryable_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [DATABACKED, "demo", "--plate-screen", "--folder", str(tmp_path), "--executor", "inline"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={"COLUMNS": "200",
        "PATH": str(Path(sys.executable).parent)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "plate1" in done.stdout
    for plate in ("plate1", "plate2"):
        assert (tmp_path / f"data/plate_report/{plate}/plot.png").exists()
    catalog = f"sqlite:///{tmp_path / '.databacked/catalog.db'}"
    code, out = _cli(
        "ls", "measure/plate1", "--store", str(tmp_path / "data"), "--catalog", catalog
    )
    assert code == 0, out
    assert out.count("measure/plate1/") == 6


def test_spec_status_counts_datums_and_shows_failures(tmp_path: Path) -> None:
    project = tmp_path / "screen"
    (project / "pipelines").mkdir(parents=True)
    spec = (EXAMPLE / "measure-cellprofiler.yml").read_text()
    (project / "pipelines" / "measure.yml").write_text(
        spec.replace("[cellprofiler,", f"[{sys.executable}, no_such_stand_in.py,")
    )
    store = Store(tmp_path / "data")
    ps.write_site(store, "plate1", "A01", 1)
    ps.write_site(store, "plate1", "A01", 2, channels=1)  # incomplete: waits
    flags = ["--store", str(tmp_path / "data"), "--catalog", f"sqlite:///{tmp_path / 'c.db'}"]

    code, out = _cli("spec", "run", str(project / "pipelines"), "--executor", "inline", *flags)
    assert code == 1, out
    code, out = _cli("spec", "status", str(project / "pipelines"), *flags)

    assert code == 0, out
    [header] = [ln for ln in out.splitlines() if "pipeline" in ln and "┃" in ln]
    [line] = [ln for ln in out.splitlines() if ln.startswith("│ measure")]
    assert [c.strip() for c in header.split("┃")[1:-1]] == ["pipeline", "failed", "waiting"]
    assert [c.strip() for c in line.split("│")[1:-1]] == ["measure", "1", "1"]
    assert "failed:" in out and "no_such_stand_in.py" in out
