"""SIGKILL at every numbered crash point, then resume: nothing corrupt is accepted, every
recorded call is reused, and between kill and resume each target holds a complete version."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_report import Campaign

from databacked.crashpoints import POINTS

HERE = Path(__file__).parent
APP = str(HERE / "campaign_app.py")

# (point, hit, executor, exchange): the fast subset covers each layer once.
FAST = [
    ("store.dir.swapped", 2, "inline", False),
    ("store.file.staged", 4, "inline", True),
    ("catalog.commit.before", 1, "inline", True),
]
# every point at its first and third hit in the driver, both folder swaps; and once in
# process-pool workers (their kills become failed calls; the resume must still be clean)
SOAK_SCENARIOS = [
    (point, hit, "inline", exchange)
    for point in POINTS.values()
    for hit in (1, 3)
    for exchange in ((True, False) if point.startswith("store.dir") else (True,))
] + [(point, 1, "processes", True) for point in POINTS.values()]
CHUNKS = 6


def _app(
    mode: str, folder: Path, version: int, executor: str, exchange: bool, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the campaign app in its own process group; afterwards the group is killed, so
    pool workers orphaned by a SIGKILLed driver (loky keeps idle workers for minutes)
    neither hold its output pipes open nor outlive the scenario."""
    argv = [sys.executable, APP, mode, str(folder), str(version), executor]
    if not exchange:
        argv.append("--no-exchange")
    full = {**os.environ, "CAMPAIGN_COUNT_FILE": str(folder / "count"), **env}
    for name in ("DATABACKED_CRASHPOINT", "DATABACKED_FAULT"):
        if name not in env:
            full.pop(name, None)
    out, err = folder / f"{mode}-{version}.out", folder / f"{mode}-{version}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(
            argv, env=full, stdout=stdout, stderr=stderr, start_new_session=True
        )
        try:
            proc.wait(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(argv, proc.returncode, out.read_text(), err.read_text())


def run_scenarios(
    folder: Path, scenarios: list[tuple[str, int, str, bool]], campaign: Campaign
) -> list[str]:
    """Run v1 cleanly, then each scenario as the next version: kill, then check + resume."""
    folder.mkdir(exist_ok=True)
    log = folder / "crashpoints.log"
    first = _app("run", folder, 1, "inline", True)
    assert first.returncode == 0, first.stderr[-3000:]
    failures = []
    for version, (point, hit, executor, exchange) in enumerate(scenarios, start=2):
        name = f"SIGKILL at {point}"
        before = log.read_text().count("\n") if log.exists() else 0
        killed = _app(
            "run",
            folder,
            version,
            executor,
            exchange,
            DATABACKED_CRASHPOINT=f"{point}@{hit}",
            DATABACKED_CRASHPOINT_LOG=str(log),
        )
        faults = (log.read_text().count("\n") if log.exists() else 0) - before
        if executor == "inline" and faults:
            assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        resumed = _app("check", folder, version, executor, exchange)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        report = json.loads(resumed.stdout.strip().splitlines()[-1])
        bad = (
            len(report["recomputed_recorded"])
            + len(report["verify_corrupt"])
            + len(report["verify_missing"])
            + len(report["wrong_values"])
            + len(report["unreadable_before_resume"])
        )
        if not report["ok"] or bad:
            failures.append(f"{point}@{hit} {executor} exchange={exchange}: {report}")
        campaign.add(
            name,
            runs=2,
            faults=faults,
            lost_or_corrupt=bad,
            note=f"executors {executor}" + ("" if exchange else ", rename fallback"),
        )
    return failures


def test_every_point_is_called_in_the_package() -> None:
    source = "".join(p.read_text() for p in (HERE.parents[1] / "src" / "databacked").rglob("*.py"))
    for name in POINTS.values():
        assert f'crashpoint("{name}")' in source, name


def test_crash_points_fast_subset(tmp_path: Path, campaign: Campaign) -> None:
    failures = run_scenarios(tmp_path / "c", FAST, campaign)
    assert not failures, "\n".join(failures)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_crash_points_soak(tmp_path: Path, campaign: Campaign, chunk: int) -> None:
    scenarios = SOAK_SCENARIOS[chunk::CHUNKS]
    failures = run_scenarios(tmp_path / "c", scenarios, campaign)
    assert not failures, "\n".join(failures)


S3_WRITER = """
import sys
import numpy as np
import databacked as db
store = db.Store(sys.argv[1])
value = np.full((2, 16, 16), int(sys.argv[2]), dtype="u2")
db.OmeZarr(dims="CYX", chunks=(1, 8, 8)).write(value, store, "img.ome.zarr")
"""


@pytest.mark.parametrize(
    "point",
    [
        pytest.param("store.dir.write", marks=pytest.mark.soak),
        pytest.param("store.dir.staged", marks=pytest.mark.soak),
        pytest.param("store.dir.swapped", marks=pytest.mark.soak),  # fast: test_store_folders
    ],
)
def test_sigkill_during_an_s3_folder_write(
    s3_bucket: str, tmp_path: Path, campaign: Campaign, point: str
) -> None:
    """On S3 a kill before the swap leaves the old version whole; a kill during the copy
    leaves a marker: the target counts as missing until rewritten or repaired."""
    import numpy as np

    import databacked as db
    from databacked.store import interrupted, repair_folder

    script = tmp_path / "writer.py"
    script.write_text(S3_WRITER)
    url = f"{s3_bucket}/p"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABACKED_CRASH")}
    subprocess.run([sys.executable, str(script), url, "1"], env=env, check=True, timeout=120)
    env.update(DATABACKED_CRASHPOINT=point, DATABACKED_CRASHPOINT_LOG=str(tmp_path / "log"))
    killed = subprocess.run([sys.executable, str(script), url, "2"], env=env, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    store = db.Store(url)
    bad = 0
    if point == "store.dir.swapped":
        with pytest.raises(db.ArtifactNotFound, match="interrupted"):
            db.load(store.uri("img.ome.zarr"))
        assert interrupted(store) == ["img.ome.zarr"]
        assert repair_folder(store, "img.ome.zarr") is not None
        assert not store.exists("img.ome.zarr")
    else:
        bad += not (db.load(store.uri("img.ome.zarr")) == 1).all()  # the old version, whole
    record = db.OmeZarr(dims="CYX", chunks=(1, 8, 8)).write(
        np.full((2, 16, 16), 3, "u2"), store, "img.ome.zarr"
    )
    bad += record.hash != store.hash("img.ome.zarr")
    bad += not (db.load(store.uri("img.ome.zarr")) == 3).all()
    assert interrupted(store) == []
    campaign.add(f"SIGKILL at {point} (S3)", runs=3, faults=1, lost_or_corrupt=bad)
    assert bad == 0
