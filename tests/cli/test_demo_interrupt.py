"""Ctrl-C during ``databacked demo --plate-screen``: exit 130, and only what exists is listed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

DATABACKED = Path(sys.executable).with_name("databacked")
INLINE = ("--executor", "inline")


def test_interrupted_plate_screen_exits_130_and_lists_only_real_files(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABACKED_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "src"), *sys.path])
    folder = tmp_path / "demo"
    proc = subprocess.Popen(
        [str(DATABACKED), "demo", "--plate-screen", "--folder", str(folder), *INLINE],
        cwd=tmp_path,
        env={**env, "COLUMNS": "300"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    measured = folder / "data" / "measure"
    deadline = time.monotonic() + 120
    while not (measured.exists() and any(measured.rglob("*.csv"))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no site was measured in 120 s"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "Interrupted" in err
    reported = re.findall(r"Report: (\S+?),?(?:\s|$)", out)
    assert all(Path(path).exists() for path in reported), reported
    assert not (folder / "data" / "plate_report" / "plate2" / "summary.csv").exists() or (
        "plate2/summary.csv" in out
    )
