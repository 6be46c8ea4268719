"""Two flow processes on one store compute each key once (catalog locks as Prefect locks).

Both processes run against a real ``prefect server start`` on loopback (PREFECT_API_URL); the
locks and the cache records are shared through the catalog and the store, not through Prefect.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import databacked
from databacked.testing import services

FLOW = """
import os
import sys
import time

import numpy as np
from prefect import flow

from databacked.integrations.prefect import ArrayToDefaultWriter, LocalResult, task

STORE = os.environ["DATABACKED_STORE"]
LOG = os.environ["SQUARES_LOG"]


@task(
    result=LocalResult(dir=STORE, serializer=ArrayToDefaultWriter),
    target=lambda **kwargs: f"squares/{kwargs['x']}.npy",
)
def square(x: int) -> np.ndarray:
    with open(LOG, "a") as log:
        log.write(f"{os.getpid()} {x}\\n")
    time.sleep(1.0)
    return np.full((4, 4), x * x)


@flow
def squares(n: int) -> list[float]:
    return [float(np.asarray(v).sum()) for v in square.map(range(n)).result()]


if __name__ == "__main__":
    print(squares(int(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``prefect server start`` on a free loopback port; its API URL."""
    try:
        import prefect  # noqa: F401
    except ImportError:
        services.unavailable("Prefect tests need the extra: pip install 'databacked[prefect]'")
    home = tmp_path_factory.mktemp("prefect-server")
    port = services.free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    cli = str(Path(sys.executable).with_name("prefect"))
    server = subprocess.Popen(
        [cli, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    services.unavailable("prefect server start did not come up on 127.0.0.1")
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_two_flow_processes_compute_each_key_once(prefect_server: str, tmp_path: Path) -> None:
    script = tmp_path / "squares_flow.py"
    script.write_text(FLOW)
    log = tmp_path / "calls.log"
    src = str(Path(databacked.__file__).parents[1])
    store = tmp_path / "store"
    store.mkdir()
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_HOME": str(tmp_path / "prefect-client"),
        "DATABACKED_STORE": str(store),
        "DATABACKED_CATALOG": f"sqlite:///{tmp_path / 'catalog.db'}",
        "SQUARES_LOG": str(log),
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), "4"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "[0.0, 16.0, 64.0, 144.0]" in out
    computed = sorted(int(line.split()[1]) for line in log.read_text().splitlines())
    assert computed == [0, 1, 2, 3]  # each key once, over both processes


def test_import_databacked_does_not_import_prefect() -> None:
    code = "import sys, databacked; databacked.Store; print('prefect' in sys.modules)"
    src = str(Path(databacked.__file__).parents[1])
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": src},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_lock_manager_excludes_other_holders(catalog_url: str) -> None:
    """The lock protocol Prefect calls: lock files beside SQLite, lease rows on servers."""
    import uuid

    from databacked.integrations.prefect import CatalogLockManager

    locks = CatalogLockManager(catalog_url)
    key = uuid.uuid4().hex * 2
    assert not locks.is_locked(key)
    assert locks.acquire_lock(key, "flow-a", hold_timeout=60)
    assert locks.is_locked(key)
    assert locks.is_lock_holder(key, "flow-a")
    assert not locks.is_lock_holder(key, "flow-b")
    assert not locks.acquire_lock(key, "flow-b", acquire_timeout=0.2)
    assert not locks.wait_for_lock(key, timeout=0.1)
    locks.release_lock(key, "flow-b")  # not the holder: nothing happens
    assert locks.is_locked(key)
    locks.release_lock(key, "flow-a")
    assert not locks.is_locked(key)
    assert locks.wait_for_lock(key, timeout=0.1)
    assert locks.acquire_lock(key, "flow-b", acquire_timeout=0.2)
    locks.release_lock(key, "flow-b")
