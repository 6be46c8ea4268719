"""Two drivers in two processes on one catalog compute each key once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

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
result = db.run(steps.many, 6, store={store!r}, catalog={catalog!r}, executor="threads", workers=3)
assert result.ok, result.summary()
import json, pathlib
values = [json.loads(pathlib.Path({store!r}, f"slow/{{x}}.json").read_text()) for x in range(6)]
assert values == [x * 10 for x in range(6)], values
"""


def test_each_key_computed_once(tmp_path: Path, store_url: str, catalog_db: str) -> None:
    (tmp_path / "two_driver_steps.py").write_text(STEPS)
    script = tmp_path / "driver.py"
    script.write_text(
        textwrap.dedent(DRIVER).format(folder=str(tmp_path), store=store_url, catalog=catalog_db)
    )
    counts = tmp_path / "count.txt"
    env = {**os.environ, "COUNT_FILE": str(counts)}
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
    assert sorted(lines) == [str(x) for x in range(6)]
