"""Eight drivers in eight processes run one pipeline on one catalog: each key computed once,
on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from reliability_report import Campaign

DRIVERS = 8
CALLS = 24

STEPS = """
import os
import time
import databacked as db

@db.step(target="out/{tag}/{x}.json")
def work(tag: str, x: int) -> dict:
    with open(os.environ["COUNT_FILE"], "a") as f:
        f.write(f"{tag}:{x}\\n")
    time.sleep(0.05)
    return {"x": x, "tag": tag}

@db.pipeline
def many(tag: str, n: int):
    return work.map(tag=[tag] * n, x=list(range(n)))
"""

DRIVER = """
import sys
sys.path.insert(0, {folder!r})
import databacked as db
import concurrent_steps as steps
result = db.run(steps.many, {tag!r}, {n}, store={store!r}, catalog={catalog!r},
                executor="threads", workers=2)
assert result.ok, result.summary()
"""


def run_round(tmp_path: Path, catalog: str, campaign: Campaign, name: str) -> int:
    """One round of DRIVERS drivers; returns how many keys were computed more than once."""
    tag = uuid.uuid4().hex[:8]  # fresh keys on a shared server database
    folder = tmp_path / tag
    folder.mkdir()
    (folder / "concurrent_steps.py").write_text(STEPS)
    script = folder / "driver.py"
    store = str(tmp_path / "data")
    script.write_text(
        DRIVER.format(folder=str(folder), tag=tag, n=CALLS, store=store, catalog=catalog)
    )
    counts = folder / "count.txt"
    env = {**os.environ, "COUNT_FILE": str(counts)}
    subprocess.run(
        [sys.executable, "-c", f"import databacked as db; db.Catalog.open({catalog!r}).close()"],
        check=True,
        env=env,
    )
    drivers = [
        subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE)
        for _ in range(DRIVERS)
    ]
    for driver in drivers:
        _, err = driver.communicate(timeout=300)
        assert driver.returncode == 0, err.decode()[-3000:]
    seen = Counter(counts.read_text().split())
    twice = sum(1 for n in seen.values() if n > 1)
    missing = CALLS - len(seen)
    campaign.add(
        f"{DRIVERS} concurrent drivers on {name}",
        runs=DRIVERS,
        lost_or_corrupt=missing,
        twice=twice,
        note=f"{CALLS} keys per round",
    )
    assert twice == 0 and missing == 0, seen
    return twice


def test_eight_drivers_sqlite(tmp_path: Path, campaign: Campaign) -> None:
    run_round(tmp_path, f"sqlite:///{tmp_path / 'catalog.db'}", campaign, "SQLite")


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("database", ["sqlite", "postgres", "mysql"])
@pytest.mark.parametrize("round_", range(3))
def test_eight_drivers_soak(
    tmp_path: Path, request: pytest.FixtureRequest, campaign: Campaign, database: str, round_: int
) -> None:
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        url = request.getfixturevalue(f"{database}_url")
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MariaDB"}
    run_round(tmp_path, url, campaign, names[database])
