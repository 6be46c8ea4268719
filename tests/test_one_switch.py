"""One switch: the demo pipeline on an S3 store (moto's server) gives the same bytes on every
executor, written by the workers straight to the bucket; and many tiny calls travel as far
fewer executor tasks, a failing call in a chunk failing alone.

Clusters and workers are real and shared by the module: a dask LocalCluster, a ``dask
scheduler`` with two ``dask worker`` processes reached by ``dask://``, and a ``databacked
worker`` (Celery, two processes) on RabbitMQ with Redis results. All of them start after the
S3 fixture has put the endpoint and credentials in the environment, which they inherit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

import databacked as db
from databacked.catalog import Catalog
from databacked.examples import make_plate
from databacked.examples.cells import CHANNELS, cells
from databacked.executors import Executor, get_executor
from databacked.testing import services

START = 60.0  # seconds a cluster or worker may take to come up
# One xdist worker for the module (`make test` uses --dist loadgroup), so its clusters start once.
pytestmark = pytest.mark.xdist_group("one_switch")
EXECUTORS = ["inline", "threads", "processes", "subprocess", "dask", "dask://", "celery"]


# -- the plate, in the bucket --------------------------------------------------------------


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> str:
    """A bucket of this module's own (the s3_bucket fixture is per test; ours is shared)."""
    name = f"dbk-switch-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def dataset(bucket: str, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """One well, one small field: its raw image saved to s3://bucket/raw/ with db.save."""
    local = make_plate(tmp_path_factory.mktemp("plate"), wells=["A01"], fields=1, size=(96, 96))
    fmt = db.OmeTiff(dims="CYX", channel_names=CHANNELS)
    moved = {}
    for path in local.fov_path.unique():
        url = f"s3://{bucket}/raw/{Path(path).name}"
        db.save(db.load(path), url, format=fmt)
        moved[path] = url
    return local.assign(fov_path=local.fov_path.map(moved))


def _objects(bucket: str, prefix: str) -> dict[str, str]:
    """Every object under ``prefix/`` as boto3 lists it: relative key -> ETag (the MD5 of a
    single PUT, so equal ETags mean equal bytes)."""
    client = boto3.client("s3")
    found: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/"
    ):
        for item in page.get("Contents", []):
            found[item["Key"][len(prefix) + 1 :]] = item["ETag"]
    return found


def _catalogued(catalog_url: str) -> dict[str, str]:
    """Artifact path -> content hash, as the driver recorded them."""
    catalog = Catalog.open(catalog_url)
    try:
        return {row.path: row.hash for row in catalog.artifacts()}
    finally:
        catalog.close()


def _run_twice(
    executor: str | Executor, bucket: str, prefix: str, dataset: pd.DataFrame, folder: Path
) -> dict[str, Any]:
    """Run the demo cold, then again; what each run did and what landed where."""
    catalog = f"sqlite:///{folder / f'{prefix}.db'}"
    store = f"s3://{bucket}/{prefix}"
    first = db.run(cells, dataset, store=store, catalog=catalog, executor=executor, workers=2)
    second = db.run(cells, dataset, store=store, catalog=catalog, executor=executor, workers=2)
    return {
        "first": first,
        "second": second,
        "keys": sorted(zip(first.calls["step"], first.calls["key"], strict=True)),
        "hashes": _catalogued(catalog),
        "objects": _objects(bucket, prefix),
    }


@pytest.fixture(scope="module")
def reference(bucket: str, dataset: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    """The inline run everything else is compared with."""
    return _run_twice("inline", bucket, "ref-inline", dataset, tmp_path_factory.mktemp("ref"))


# -- the clusters and workers --------------------------------------------------------------


@pytest.fixture(scope="module")
def local_cluster(s3_endpoint: str) -> Iterator[Any]:
    services.require("distributed", "dask")
    from databacked.executors.dask import start_local_cluster

    cluster = start_local_cluster(2)
    yield cluster
    cluster.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session, and anything it started."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    # Pool children can outlive their parent: end the whole session either way.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=15)


def _spawn(stack: ExitStack, command: Sequence[str | Path], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)  # AWS_* from the s3 fixture: workers use their own credentials
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p or os.getcwd() for p in sys.path))
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(part) for part in command],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=services.die_with_parent,  # an interrupted run leaves no cluster
        )
    stack.callback(_stop, process)
    return process


def _wait_for(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{process.args[:2]} did not start:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def scheduler_url(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dask scheduler` and two `dask worker` processes on loopback; ``dask://host:port``."""
    distributed = services.require("distributed", "dask")
    import json

    folder = tmp_path_factory.mktemp("dask-cli")
    path, log = folder / "scheduler.json", folder / "cluster.log"
    dask_cli = Path(sys.executable).with_name("dask")
    loopback = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]
    with ExitStack() as stack:
        scheduler = _spawn(
            stack,
            [dask_cli, "scheduler", *loopback, "--port", "0", "--scheduler-file", path],
            log,
        )
        _wait_for(path.exists, scheduler, log)
        for _ in range(2):
            _spawn(
                stack,
                [dask_cli, "worker", *loopback, "--nthreads", "1", "--scheduler-file", path],
                log,
            )
        with distributed.Client(scheduler_file=str(path), timeout=START) as client:
            client.wait_for_workers(2, timeout=START)
        yield json.loads(path.read_text())["address"].replace("tcp://", "dask://")


@pytest.fixture(scope="module")
def celery_options(
    s3_endpoint: str, amqp_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A ``databacked worker`` (2 processes) on a queue of its own; the executor's options."""
    services.require("celery", "celery")
    from databacked.executors.celery import create_app

    queue = f"databacked-switch-{uuid.uuid4().hex[:10]}"
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    command = [sys.executable, "-c", "from databacked.cli import main; main()", "worker"]
    command += ["--broker", amqp_url, "--backend", redis_url, "--queue", queue]
    with ExitStack() as stack:
        worker = _spawn(stack, [*command, "--concurrency", "2"], log)
        _wait_for(lambda: b" ready." in log.read_bytes(), worker, log)
        yield {"broker": amqp_url, "backend": redis_url, "queue": queue}
    app = create_app(amqp_url, "rpc://", queue=queue)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)
    app.close()


@contextmanager
def executor_for(name: str, request: pytest.FixtureRequest) -> Iterator[str | Executor]:
    """What ``db.run(executor=...)`` gets for ``name``: a string where one suffices."""
    if name == "dask":
        cluster = request.getfixturevalue("local_cluster")
        with get_executor("dask", cluster=cluster) as executor:
            yield executor
    elif name == "dask://":
        yield request.getfixturevalue("scheduler_url")
    elif name == "celery":
        options = request.getfixturevalue("celery_options")
        with get_executor("celery", workers=2, **options) as executor:
            yield executor
    else:
        yield name


# -- the demo on S3, on every executor -----------------------------------------------------


@pytest.mark.parametrize("name", EXECUTORS)
def test_demo_on_s3_same_bytes_on_every_executor(
    name: str,
    request: pytest.FixtureRequest,
    reference: dict[str, Any],
    bucket: str,
    dataset: pd.DataFrame,
    tmp_path: Path,
) -> None:
    prefix = f"on-{name.strip(':/')}"
    with executor_for(name, request) as executor:
        got = _run_twice(executor, bucket, prefix, dataset, tmp_path)

    first, second = got["first"], got["second"]
    assert first.ok, first.summary()
    assert set(first.calls["status"]) == {"ran"}
    assert second.counts()["cached"] == len(second.calls) == len(first.calls)
    # Same calls (keys), same recorded content hashes, same bytes in the bucket.
    assert got["keys"] == reference["keys"]
    assert got["hashes"] == reference["hashes"]
    assert got["objects"] == reference["objects"]
    # Every artifact the catalog knows is an object boto3 lists under the run's prefix.
    assert set(got["hashes"]) <= set(got["objects"])
    assert {"summary.csv", "plots/plate1.png"} <= set(got["objects"])
    assert any(key.startswith("normalized/") for key in got["objects"])


# -- batching ------------------------------------------------------------------------------


@db.step(persist=False)
def tiny(i: int) -> int:
    if i == 1234:
        raise ValueError("call 1234 fails on purpose")
    return i + 1


@db.pipeline
def many(n: int) -> list[Any]:
    return tiny.map(i=list(range(n)))


class CountingExecutor:
    """Passes everything to a real executor, counting the tasks the scheduler submits."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_workers = inner.max_workers
        self.tasks = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        self.tasks += 1
        return self.inner.submit(fn, *args)

    def submit_batch(self, fn: Callable[..., Any], batch: Sequence[tuple[Any, ...]]) -> Future[Any]:
        self.tasks += 1
        return self.inner.submit_batch(fn, batch)

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> CountingExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@pytest.mark.parametrize("name", ["processes", "dask"])
def test_many_tiny_calls_travel_in_few_tasks(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    n = 5000
    if name == "dask":
        inner = get_executor("dask", cluster=request.getfixturevalue("local_cluster"))
    else:
        inner = get_executor("processes", workers=2)
    with CountingExecutor(inner) as executor:
        result = db.run(
            many,
            n,
            store=str(tmp_path / "store"),
            catalog=f"sqlite:///{tmp_path / 'c.db'}",
            executor=executor,
        )
    assert 0 < executor.tasks <= n // 20, executor.tasks
    calls = result.calls
    failed = calls[calls["status"] == "failed"]
    assert len(failed) == 1
    assert "call 1234 fails on purpose" in failed["error"].iloc[0]
    assert (calls["status"] == "ran").sum() == n - 1
