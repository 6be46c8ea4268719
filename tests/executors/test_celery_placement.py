"""Timeouts and queues on Celery, with real ``databacked worker`` processes on RabbitMQ: a call
past its timeout fails with its reason while its siblings finish (and is retried when it has
retries); a step with ``queue=`` runs only on the workers consuming that queue, and a queue
nobody consumes is named in the warning."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import databacked as db
from databacked.catalog import Catalog
from databacked.errors import CallTimeout
from databacked.executors.base import Placement
from databacked.testing import services
from databacked.testing.executor_contract import TIMEOUT

services.require("celery", "celery")

from test_celery import _delete_queue, celery_worker, modules, write_module  # noqa: E402, F401

from databacked.executors.celery import CeleryExecutor  # noqa: E402

SLEEPY = """
import time
from pathlib import Path

import databacked as db


@db.step(target="t/{x}.json", timeout=1)
def sleepy(x: int, marks: str) -> int:
    with open(Path(marks) / "count.txt", "a") as f:
        f.write(f"{x}\\n")
    time.sleep(30 if x == 0 else 0.01)
    return x


@db.step(target="r/{x}.json", timeout=1, retries=1)
def sleepy_retried(x: int, marks: str) -> int:
    return sleepy.fn(x, marks)


@db.pipeline
def four(marks: str):
    return sleepy.map(x=[0, 1, 2, 3], marks=marks)


@db.pipeline
def four_retried(marks: str):
    return sleepy_retried.map(x=[0, 1, 2, 3], marks=marks)
"""


@pytest.fixture(scope="module")
def worker(
    amqp_url: str,
    redis_url: str,
    modules: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """One ``databacked worker`` of two processes on a queue of its own."""
    queue = f"databacked-test-limits-{uuid.uuid4().hex[:12]}"
    log = tmp_path_factory.mktemp("celery_limits") / "worker.log"
    try:
        with celery_worker(amqp_url, queue, log, backend=redis_url, project=modules):
            yield {"broker": amqp_url, "backend": redis_url, "queue": queue}
    finally:
        _delete_queue(amqp_url, queue)


def _run(pipeline: Any, tmp_path: Path, service: dict[str, str], *args: Any) -> Any:
    with CeleryExecutor(
        address=service["broker"], backend=service["backend"], queue=service["queue"], workers=2
    ) as executor:
        return db.run(
            pipeline,
            *args,
            store=str(tmp_path / "data"),
            catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
            executor=executor,
        )


def test_a_call_past_its_timeout_fails_and_its_siblings_finish(
    worker: dict[str, str],
    modules: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    mod = write_module(modules, "celery_sleepy", SLEEPY)
    result = _run(mod.four, tmp_path, worker, str(tmp_path))
    calls = result.calls  # in the order of the map: x = 0, 1, 2, 3
    assert list(calls["status"]) == ["failed", "ran", "ran", "ran"]
    assert calls["error"][0] == "CallTimeout: timeout after 1 s"
    with Catalog.open(tmp_path / "catalog.db") as catalog:
        [attempt] = [c for c in catalog.calls_of_run(result.run_id) if c.status == "failed"]
    assert attempt.error_message == "timeout after 1 s"


def test_a_timed_out_call_is_retried(
    worker: dict[str, str],
    modules: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    mod = write_module(modules, "celery_sleepy", SLEEPY)
    result = _run(mod.four_retried, tmp_path, worker, str(tmp_path))
    assert result.counts() == {"ran": 3, "cached": 0, "failed": 1, "skipped": 0}
    assert (tmp_path / "count.txt").read_text().split().count("0") == 2


STUCK = """
import signal
import time

import databacked as db


@db.step
def stuck(seconds: float) -> str:
    # As a call stuck in C code: the timer's signal never reaches Python.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
    return "slept"


@db.step
def pid() -> int:
    import os

    return os.getpid()
"""


def test_a_call_the_timer_cannot_stop_is_killed_at_the_tasks_time_limit(
    worker: dict[str, str],
    modules: Path,  # noqa: F811
) -> None:
    mod = write_module(modules, "celery_stuck", STUCK)
    placement = Placement(timeouts=(1.0,), backstop=2.0)  # killed 3 s after it started
    with CeleryExecutor(
        address=worker["broker"], backend=worker["backend"], queue=worker["queue"]
    ) as executor:
        future = executor.place(placement, mod.stuck, 30)
        with pytest.raises(CallTimeout, match=r"^timeout after 1 s; the call did not stop"):
            future.result(timeout=TIMEOUT)
        assert executor.submit(mod.pid).result(timeout=TIMEOUT) > 0  # the worker goes on


ROUTED = """
import os

import databacked as db


@db.step(target="gpu/{x}.json", queue="QUEUE")
def on_gpu(x: int) -> str:
    return os.environ["WORKER_ROLE"]


@db.step(target="cpu/{x}.json")
def on_cpu(x: int) -> str:
    return os.environ["WORKER_ROLE"]


@db.pipeline
def mixed():
    return on_gpu.map(x=[1, 2, 3]), on_cpu.map(x=[1, 2, 3])
"""


@contextmanager
def _default_and_gpu_workers(
    amqp_url: str, redis_url: str, project: Path, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """Two ``databacked worker`` processes: one on a default queue, one consuming only a
    "gpu" queue; each tells its role in ``WORKER_ROLE``. Yields the two queue names."""
    tag = uuid.uuid4().hex[:12]
    default, gpu = f"databacked-test-default-{tag}", f"databacked-test-gpu-{tag}"
    try:
        with (
            celery_worker(amqp_url, default, tmp_path / "default.log", backend=redis_url,
                          project=project, env_extra={"WORKER_ROLE": "default"}),
            celery_worker(amqp_url, None, tmp_path / "gpu.log", backend=redis_url,
                          project=project, extra=("--queues", gpu), concurrency=1,
                          env_extra={"WORKER_ROLE": "gpu"}),
        ):  # fmt: skip
            yield default, gpu
    finally:
        _delete_queue(amqp_url, default)
        _delete_queue(amqp_url, gpu)


def test_a_step_with_a_queue_runs_only_on_the_workers_of_that_queue(
    amqp_url: str,
    redis_url: str,
    modules: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    with _default_and_gpu_workers(amqp_url, redis_url, modules, tmp_path) as (default, gpu):
        mod = write_module(modules, "celery_routed", ROUTED.replace("QUEUE", gpu))
        service = {"broker": amqp_url, "backend": redis_url, "queue": default}
        result = _run(mod.mixed, tmp_path, service)
    assert result.ok, result.summary()
    data = tmp_path / "data"
    assert {db.load(p) for p in (data / "gpu").iterdir()} == {"gpu"}
    assert {db.load(p) for p in (data / "cpu").iterdir()} == {"default"}


ROLES = """
import os


def role(files, output_dir):
    for path in files.values():
        (output_dir / f"{path.name}.role").write_text(os.environ["WORKER_ROLE"])
"""


def test_a_spec_with_a_queue_runs_its_datums_only_on_the_workers_of_that_queue(
    amqp_url: str,
    redis_url: str,
    modules: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from databacked.specs.runner import run_specs
    from databacked.store import Store

    mod = write_module(modules, "spec_roles", ROLES)
    store = Store(tmp_path / "data")
    for i in range(4):
        store.put_bytes(f"texts/t{i}.txt", b"x")
    with _default_and_gpu_workers(amqp_url, redis_url, modules, tmp_path) as (default, gpu):
        # the workers run only transforms their project's specs name: the specs live there
        (modules / "pipelines").mkdir(exist_ok=True)
        specs = modules / "pipelines" / f"roles-{gpu}.yml"
        specs.write_text(
            f"pipeline: on_gpu\ninput: {{repo: texts, glob: /*}}\n"
            f"transform: {{python: '{mod.__name__}:role'}}\nqueue: {gpu}\n---\n"
            f"pipeline: on_cpu\ninput: {{repo: texts, glob: /*}}\n"
            f"transform: {{python: '{mod.__name__}:role'}}\n"
        )
        with (
            CeleryExecutor(address=amqp_url, backend=redis_url, queue=default) as executor,
            Catalog.open(tmp_path / "catalog.db") as catalog,
        ):
            result = run_specs(specs, store=store, catalog=catalog, executor=executor)
    assert result.ok, result.rows
    assert result.counts() == {"on_gpu": {"ran": 4}, "on_cpu": {"ran": 4}}
    roles = {repo: {p.read_text() for p in (tmp_path / "data" / repo).glob("*.role")}
             for repo in ("on_gpu", "on_cpu")}  # fmt: skip
    assert roles == {"on_gpu": {"gpu"}, "on_cpu": {"default"}}


def test_a_queue_no_worker_consumes_is_named_in_the_warning(
    worker: dict[str, str],
    modules: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    mod = write_module(modules, "celery_unserved", STUCK)
    nobody = f"databacked-test-nobody-{uuid.uuid4().hex[:12]}"
    try:
        with (
            caplog.at_level(logging.WARNING, logger="databacked"),
            CeleryExecutor(
                address=worker["broker"],
                backend=worker["backend"],
                queue=worker["queue"],
                no_worker_warning=0.5,
            ) as executor,
        ):
            waiting = executor.place(Placement(queue=nobody), mod.pid)
            # the executor's own queue answers meanwhile: that says nothing about the other
            assert executor.submit(mod.pid).result(timeout=TIMEOUT) > 0
            deadline = time.monotonic() + 30
            while not caplog.records and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not waiting.done()
    finally:
        _delete_queue(worker["broker"], nobody)
    (record,) = [r for r in caplog.records if r.name == "databacked.executors.celery"]
    message = record.getMessage()
    assert f"No Celery worker has taken a call from queue {nobody!r}" in message
    assert message.endswith(f"--queues {nobody}")
    assert "guest:guest" not in message
