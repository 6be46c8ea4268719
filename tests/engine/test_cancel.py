"""Cancelling a driver: SIGINT exits 130, SIGTERM 143, running calls get a grace period, a
second Ctrl-C stops at once, and the rerun computes only what had not finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import databacked as db

STEPS = """
import os
import time
import databacked as db


@db.step(target="out/{x}.json")
def work(x: int) -> int:
    with open(os.environ["COUNT_FILE"], "a") as f:
        f.write(f"start {x}\\n")
    time.sleep(60 if os.path.exists("slow") else float(os.environ["SECONDS_PER_CALL"]))
    with open(os.environ["COUNT_FILE"], "a") as f:
        f.write(f"end {x}\\n")
    return x


@db.pipeline
def many(n: int = 16):
    return work.map(x=list(range(n)))
"""


def _lines(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(w, int(x)) for w, x in (line.split() for line in path.read_text().splitlines())]


def _start(tmp_path: Path, *args: str, seconds: str = "0.3") -> tuple[subprocess.Popen, Path]:
    (tmp_path / "cancel_steps.py").write_text(STEPS)
    counts = tmp_path / "count.txt"
    env = {**os.environ, "COUNT_FILE": str(counts), "SECONDS_PER_CALL": seconds}
    command = [sys.executable, "-c", "from databacked.cli import main; main()", "run"]
    command += ["cancel_steps.py:many", "--store", "data", "--catalog", "sqlite:///c.db"]
    driver = subprocess.Popen(
        [*command, "--executor", "processes", "--workers", "2", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and driver.poll() is None:
        if sum(w == "end" for w, _ in _lines(counts)) >= 3:
            break
        time.sleep(0.02)
    assert driver.poll() is None, driver.communicate()
    return driver, counts


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_and_the_rerun_computes_only_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int, code: int
) -> None:
    driver, counts = _start(tmp_path)
    driver.send_signal(signum)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == code, err
    assert f"Stopped on {signal.Signals(signum).name}" in err
    started = {x for w, x in _lines(counts) if w == "start"}
    ended = {x for w, x in _lines(counts) if w == "end"}
    assert started == ended  # the running calls were given their grace period
    assert len(ended) < 16

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COUNT_FILE", str(counts))
    monkeypatch.setenv("SECONDS_PER_CALL", "0")
    import cancel_steps

    before = len(_lines(counts))
    result = db.run(cancel_steps.many, store="data", catalog="sqlite:///c.db", executor="inline")
    rerun = {x for w, x in _lines(counts)[before:] if w == "start"}
    assert result.ok
    assert rerun == set(range(16)) - ended
    assert result.counts()["cached"] == len(ended)
    sys.modules.pop("cancel_steps", None)


def _slow_calls_running(tmp_path: Path, counts: Path) -> None:
    """From now on calls take a minute; wait until one such call runs."""
    (tmp_path / "slow").write_text("")
    seen = len(_lines(counts))
    while not any(w == "start" for w, _ in _lines(counts)[seen:]):
        time.sleep(0.02)


def test_past_the_grace_period_running_calls_are_stopped(tmp_path: Path) -> None:
    driver, counts = _start(tmp_path, "--grace", "0.5")
    _slow_calls_running(tmp_path, counts)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=30)  # not the minute the running calls would take
    assert driver.returncode == 130, err
    assert "Stopped on SIGINT" in err


def test_a_second_ctrl_c_stops_at_once(tmp_path: Path) -> None:
    driver, counts = _start(tmp_path, "--grace", "600")
    _slow_calls_running(tmp_path, counts)
    driver.send_signal(signal.SIGINT)  # would wait up to 600 s for the running calls
    time.sleep(0.5)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=30)
    assert driver.returncode == 130, err


def test_sigint_stops_a_spec_run_and_the_rerun_computes_only_the_rest(tmp_path: Path) -> None:
    from databacked.catalog import Catalog
    from databacked.specs.runner import run_specs
    from databacked.store import Store

    store = Store(tmp_path / "data")
    for i in range(12):
        store.put_bytes(f"texts/t{i:02d}.txt", b"x")
    ran = tmp_path / "ran.txt"
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yml").write_text(
        "pipeline: slow\n"
        'input: {repo: texts, glob: "/(*).txt"}\n'
        "transform:\n"
        f'  cmd: [sh, -c, "sleep 0.3; echo {{1}} >> {ran}; touch {{output_dir}}/{{1}}"]\n'
    )
    command = [sys.executable, "-c", "from databacked.cli import main; main()", "spec", "run"]
    command += ["pipelines", "--store", "data", "--catalog", "sqlite:///c.db"]
    driver = subprocess.Popen(
        [*command, "--executor", "processes", "--workers", "2"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and driver.poll() is None:
        if ran.exists() and len(ran.read_text().split()) >= 3:
            break
        time.sleep(0.02)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    assert "Stopped on SIGINT" in err
    before = ran.read_text().split()
    assert 3 <= len(before) < 12

    with Catalog.open(tmp_path / "c.db") as catalog:
        result = run_specs(tmp_path / "pipelines", store=store, catalog=catalog)
    again = ran.read_text().split()[len(before) :]
    assert result.counts() == {"slow": {"cached": len(before), "ran": 12 - len(before)}}
    assert not set(again) & set(before)
