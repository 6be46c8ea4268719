"""``databacked demo``: the project's main job, run as a user runs it, twice."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pandas as pd
import typer
from typer.testing import CliRunner, Result

from databacked.cli.demo import register

DATABACKED = Path(sys.executable).parent / "databacked"


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A group, so ``demo`` is a sub-command as in the real CLI."""

    register(app)
    return app


def _demo(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The demo as a user runs it: the installed console script, in its own process."""
    return subprocess.run(
        [str(DATABACKED), "demo", "--folder", str(folder), "--fields", "1", *extra],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _demo_in_process(folder: Path, *extra: str) -> Result:
    return CliRunner().invoke(_app(), ["demo", "--folder", str(folder), "--fields", "1", *extra])


def test_demo_twice_on_processes_second_run_all_cached(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    first = _demo(folder, "--workers", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    data = folder / "data"
    summary = pd.read_csv(data / "summary.csv")
    assert len(summary) > 0
    assert len(list((data / "projections").glob("*.png"))) == len(summary)
    assert len(list((data / "normalized").glob("*.ome.tiff"))) == len(summary)
    assert iio.imread(data / "plots" / "plate1.png").ndim == 3
    assert (folder / ".databacked" / "catalog.db").is_file()
    assert str(data / "summary.csv") in first.stdout
    stamp = (data / "summary.csv").stat().st_mtime_ns

    second = _demo(folder, "--workers", "2")
    assert second.returncode == 0, second.stdout + second.stderr
    cached = re.search(r"All (\d+) calls cached, nothing recomputed", second.stdout)
    assert cached, second.stdout
    assert int(cached.group(1)) == 4 * len(summary) + 2
    assert (data / "summary.csv").stat().st_mtime_ns == stamp  # nothing was rewritten


def test_demo_exits_1_and_names_the_step_when_calls_fail(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    # A file where the projections folder should be: every projection fails to write.
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "projections").write_text("in the way")
    result = _demo_in_process(folder, "--executor", "inline")
    assert result.exit_code == 1, result.output
    assert "project failed" in result.output
    # Independent calls still ran: the summary does not depend on the projections.
    assert (folder / "data" / "summary.csv").is_file()
