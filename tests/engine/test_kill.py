"""kill -9 loses at most the calls in flight: a driver on ``processes`` and ``inline``, or a
worker in the middle of a batch. What had finished is reused, never computed again."""

from __future__ import annotations

import collections
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


def _log(what, x):
    with open(os.environ["COUNT_FILE"], "a") as f:
        f.write(f"{what} {x} {os.getpid()}\\n")


@db.step(target="out/{x}.json")
def work(x: int) -> dict:
    _log("start", x)
    time.sleep(0.04)
    if x == int(os.environ.get("KILLER", "-1")) and os.environ.get("KILL_WORKER"):
        os.kill(os.getpid(), 9)
    _log("end", x)
    return {"x": x}


@db.step(target="batched/{x}.json", batch=8)
def batched(x: int) -> dict:
    return work.fn(x)


@db.pipeline
def many(n: int):
    return work.map(x=list(range(n)))


@db.pipeline
def many_batched(n: int):
    return batched.map(x=list(range(n)))
"""

DRIVER = """
import sys
sys.path.insert(0, {folder!r})
import databacked as db
import kill_steps
db.run(kill_steps.many, {n}, store={store!r}, catalog={catalog!r}, executor={executor!r},
       workers=2)
"""

N = 60


def _lines(path: Path, pid: int | None = None) -> list[tuple[str, int]]:
    """(start|end, x) lines of the count file, of process ``pid`` only when given."""
    if not path.exists():
        return []
    rows = (line.split() for line in path.read_text().splitlines())
    return [(w, int(x)) for w, x, p in rows if pid is None or int(p) == pid]


@pytest.mark.parametrize("executor", ["processes", "inline"])
def test_driver_killed_mid_run_loses_only_calls_in_flight(
    tmp_path: Path, executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kill_steps.py").write_text(STEPS)
    store, catalog = str(tmp_path / "data"), f"sqlite:///{tmp_path / 'catalog.db'}"
    script = tmp_path / "driver.py"
    script.write_text(
        DRIVER.format(folder=str(tmp_path), n=N, store=store, catalog=catalog, executor=executor)
    )
    counts = tmp_path / "count.txt"
    monkeypatch.setenv("COUNT_FILE", str(counts))
    driver = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and driver.poll() is None:
        if sum(w == "end" for w, _ in _lines(counts)) >= 25:
            break
        time.sleep(0.01)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert driver.returncode == -signal.SIGKILL
    ended = {x for w, x in _lines(counts) if w == "end"}
    assert 25 <= len(ended) < N

    monkeypatch.syspath_prepend(str(tmp_path))
    import kill_steps

    result = db.run(kill_steps.many, N, store=store, catalog=catalog, executor="inline")
    assert result.ok, result.summary()
    rerun = {x for w, x in _lines(counts, os.getpid()) if w == "start"}
    # every call that had finished is reused; only those in flight (one per worker, the
    # outputs of a call whose function had returned may not have been written) run again
    assert len(rerun & ended) <= 2
    assert len(rerun) <= N - 23
    reused = result.calls.query("status == 'cached'")
    assert len(reused) == N - len(rerun)
    for x in range(N):
        assert db.load(str(Path(store, "out", f"{x}.json")))["x"] == x


def test_a_worker_killed_mid_batch_loses_only_its_own_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kill_steps2.py").write_text(STEPS)
    monkeypatch.syspath_prepend(str(tmp_path))
    counts = tmp_path / "count.txt"
    monkeypatch.setenv("COUNT_FILE", str(counts))
    monkeypatch.setenv("KILLER", "5")
    monkeypatch.setenv("KILL_WORKER", "1")
    import kill_steps2

    result = db.run(
        kill_steps2.many_batched,
        16,
        store=str(tmp_path / "data"),
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        executor="processes",
        workers=2,
    )
    statuses = dict(zip(result.calls["key"], result.calls["status"], strict=True))
    assert collections.Counter(statuses.values()) == {"ran": 15, "failed": 1}
    starts = collections.Counter(x for w, x in _lines(counts) if w == "start")
    # the calls of the killed batch that had finished were not run again; the killer was
    # run once more alone, to tell it from its innocent batch-mates
    assert starts[5] == 2
    # the other worker's batch broke with the pool: only its call in flight ran twice
    assert sum(1 for x in range(16) if x != 5 and starts[x] > 1) <= 1, starts
    assert all(starts[x] >= 1 for x in range(16))
