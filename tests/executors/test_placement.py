"""What the dispatcher tells executors that place tasks (dask, celery): each task's timeouts,
resources and queue, never mixing queues in one task; a lone call whose process was killed
past its timeout is failed at once, not run again to find out. The executor here is a real
one of our own that runs tasks in this process and keeps the placements it was given (the
dask and celery tests run the same through real clusters)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

import databacked as db
from databacked.errors import CallTimeout, PipelineError
from databacked.executors.base import BaseExecutor, Placement, resource_kind


class Placing(BaseExecutor):
    """Runs tasks at once in this thread; keeps every placement, and with ``overrun`` fails
    timed tasks as a cluster does when it kills them at their limit."""

    name = "placing"

    def __init__(self, overrun: bool = False) -> None:
        super().__init__()
        self.max_workers = 2
        self.overrun = overrun
        self.placed: list[tuple[Placement, list[Any]]] = []
        self.plain: list[list[Any]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        self.plain.append(list(args[0]))
        return self._now(fn, *args)

    def place(self, placement: Placement, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        self.placed.append((placement, list(args[0])))
        if self.overrun and placement.timed:
            failed: Future[Any] = Future()
            failed.set_exception(placement.overrun())
            return failed
        return self._now(fn, *args)

    @staticmethod
    def _now(fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future


@db.step(target="gpu/{x}.json", queue="gpu", batch=8)
def on_gpu(x: int) -> int:
    return x


@db.step(target="cpu/{x}.json", batch=8)
def on_cpu(x: int) -> int:
    return x


@db.step(target="timed/{x}.json", timeout=5, batch=8)
def timed(x: int) -> int:
    return x


@db.step(target="held/{x}.json", resources={"gpu": 1})
def held(x: int) -> int:
    return x


@db.step(target="over/{x}.json", timeout=1, retries=1)
def over(x: int) -> int:
    return x


@db.pipeline
def mixed() -> Any:
    xs = list(range(6))
    return on_gpu.map(x=xs), on_cpu.map(x=xs), timed.map(x=xs), held.map(x=[1, 2])


@db.pipeline
def overrunning() -> Any:
    return over(x=1)


def _run(pipeline: Any, executor: Placing, tmp_path: Path) -> Any:
    return db.run(
        pipeline,
        store=str(tmp_path / "data"),
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        executor=executor,
    )


def test_each_task_carries_its_queue_timeouts_and_resources(tmp_path: Path) -> None:
    executor = Placing()
    result = _run(mixed, executor, tmp_path)
    assert result.counts()["ran"] == 20
    for placement, tasks in executor.placed:
        steps = {task.step for task in tasks}
        if placement.queue is not None:
            assert steps == {"on_gpu"} and placement.queue == "gpu"
        if placement.resources:
            assert steps == {"held"} and dict(placement.resources) == {"gpus": 1.0}
            assert len(tasks) == 1
        assert placement.timeouts == tuple(task.timeout for task in tasks)
        if "on_cpu" in steps:  # batched with timed calls: the task is timed
            assert "timed" in steps
    placed = [task.step for _, tasks in executor.placed for task in tasks]
    assert (placed.count("held"), placed.count("on_gpu"), placed.count("timed")) == (2, 6, 6)
    assert {task.step for tasks in executor.plain for task in tasks} <= {"on_cpu"}


def test_a_lone_call_killed_past_its_timeout_fails_once_per_attempt(tmp_path: Path) -> None:
    executor = Placing(overrun=True)
    result = _run(overrunning, executor, tmp_path)
    assert list(result.calls["status"]) == ["failed"]
    assert result.calls["error"][0].startswith("CallTimeout: timeout after 1 s; the call did")
    assert len(executor.placed) == 2  # the attempt and its one retry, each run once


def test_placement_limit_and_overrun() -> None:
    assert Placement(timeouts=(1.0, None)).limit is None
    assert Placement(timeouts=(1.0, 2.0), backstop=0.5).limit == 3.5
    error = Placement(timeouts=(2.0,), backstop=1.0).overrun()
    assert isinstance(error, CallTimeout)
    assert str(error).startswith("timeout after 2 s; the call did not stop at it")
    assert str(error).endswith("after 3 s")
    assert [resource_kind(n) for n in ("GPU", "gpus", "CPU", "mem")] == [
        "gpus",
        "gpus",
        "cpus",
        "memory",
    ]


@pytest.mark.parametrize("queue", ["", " gpu", 3])
def test_a_bad_queue_is_one_sentence(queue: Any) -> None:
    def f() -> None: ...

    with pytest.raises(PipelineError, match=r"^Step 'f' has queue=.*; give the name of a Celery"):
        db.step(queue=queue)(f)
