"""Two drivers in two processes on one catalog compute each key once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

STEPS = """
import os
import time
import databacked as db

@db.step(target="slow/{x}.json")
def slow(x: int) -> int:
    with open(os.environ["COUNT_FILE"], "a") as f:
        f.write(f"{x}\\n")
    time.sleep(0.2)
    return x * 10

@db.pipeline
def many(n: int):
    return slow.map(x=list(range(n)))
"""

DRIVER = """
import sys
sys.path.insert(0, {folder!r})
import databacked as db
import two_driver_steps as steps
result = db.run(steps.many, {n}, store={store!r}, catalog={catalog!r}, executor={executor!r},
                workers=3)
assert result.ok, result.summary()
import json, pathlib
values = [json.loads(pathlib.Path({store!r}, f"slow/{{x}}.json").read_text()) for x in range({n})]
assert values == [x * 10 for x in range({n})], values
"""


@pytest.mark.parametrize(
    ("executor", "n", "ttl"),
    # inline: a wave of 10 x 0.2 s outlives a 1 s lease; renewed between calls, it holds
    [("threads", 6, "600"), ("inline", 10, "1")],
)
def test_each_key_computed_once(
    tmp_path: Path, store_url: str, catalog_db: str, executor: str, n: int, ttl: str
) -> None:
    (tmp_path / "two_driver_steps.py").write_text(STEPS)
    script = tmp_path / "driver.py"
    script.write_text(
        textwrap.dedent(DRIVER).format(
            folder=str(tmp_path), store=store_url, catalog=catalog_db, executor=executor, n=n
        )
    )
    counts = tmp_path / "count.txt"
    env = {**os.environ, "COUNT_FILE": str(counts), "DATABACKED_LEASE_TTL": ttl}
    # both drivers first create the catalog's schema: do that once so they race on leases only
    subprocess.run(
        [sys.executable, "-c", f"import databacked as db; db.Catalog.open({catalog_db!r}).close()"],
        check=True,
        env=env,
        cwd=tmp_path,
    )
    drivers = [
        subprocess.Popen(
            [sys.executable, str(script)], env=env, cwd=tmp_path, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for driver in drivers:
        _, err = driver.communicate(timeout=120)
        assert driver.returncode == 0, err.decode()[-2000:]
    lines = counts.read_text().split()
    assert sorted(lines, key=int) == [str(x) for x in range(n)]
