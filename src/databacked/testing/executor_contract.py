"""``ExecutorContract``: what every executor must do, as a pytest class to subclass.

An implementation's test module provides an ``executor`` fixture and inherits every test::

    class TestThreads(ExecutorContract):
        @pytest.fixture
        def executor(self):
            with get_executor("threads", workers=2) as ex:
                yield ex

The fixture must yield an open executor and close it afterwards (``close`` is idempotent, so
a test that closes it early is fine).
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Any

import pytest

from databacked.engine.step import step
from databacked.errors import ExecutorError
from databacked.executors.base import Executor, ItemFailed, split_batch

# Generous: a cluster executor may need to start workers before the first result.
TIMEOUT = 120


class ContractError(ValueError):
    """A user-defined exception type that must come back as itself."""


# Steps, not plain functions: a remote worker runs only what @step made (DESIGN section 11).
@step
def add(a: int, b: int) -> int:
    return a + b


@step
def fail(message: str) -> None:
    raise ContractError(message)


@step
def divide(a: float, b: float) -> float:
    return a / b


@step
def worker_pid() -> int:
    return os.getpid()


@step
def echo(value: Any) -> Any:
    return value


class ExecutorContract:
    """Behaviour shared by inline, threads, processes, subprocess, dask and celery."""

    def test_is_an_executor(self, executor: Executor) -> None:
        assert isinstance(executor, Executor)
        assert isinstance(executor.name, str)
        assert executor.name
        assert executor.max_workers >= 1

    def test_result_comes_back(self, executor: Executor) -> None:
        assert executor.submit(add, 2, 3).result(timeout=TIMEOUT) == 5

    def test_exception_comes_back_with_its_type(self, executor: Executor) -> None:
        future = executor.submit(fail, "boom in a step")
        with pytest.raises(ContractError, match="boom in a step"):
            future.result(timeout=TIMEOUT)
        assert isinstance(future.exception(), ContractError)

    def test_large_values_round_trip(self, executor: Executor) -> None:
        payload = bytes(range(256)) * 8192  # 2 MiB
        assert executor.submit(echo, payload).result(timeout=TIMEOUT) == payload

    def test_batch_isolates_failures_per_item(self, executor: Executor) -> None:
        results = executor.submit_batch(divide, [(1, 1), (1, 0), (9, 3)]).result(timeout=TIMEOUT)
        assert len(results) == 3
        assert results[0] == 1
        assert results[2] == 3
        assert isinstance(results[1], ItemFailed)
        assert isinstance(results[1].exception, ZeroDivisionError)
        assert "ZeroDivisionError" in results[1].traceback

    def test_split_batch_gives_one_future_per_item(self, executor: Executor) -> None:
        batch = [(i, 2 - i) for i in range(5)]  # item 2 divides by zero
        items = split_batch(executor.submit_batch(divide, batch), len(batch))
        done, _ = concurrent.futures.wait(items, timeout=TIMEOUT)
        assert len(done) == 5
        assert items[0].result() == 0
        assert items[4].result() == -2
        with pytest.raises(ZeroDivisionError):
            items[2].result()

    def test_many_small_tasks(self, executor: Executor) -> None:
        futures = [executor.submit(add, i, 1) for i in range(200)]
        assert [f.result(timeout=TIMEOUT) for f in futures] == list(range(1, 201))
        big = executor.submit_batch(add, [(i, i) for i in range(2000)]).result(timeout=TIMEOUT)
        assert big == [2 * i for i in range(2000)]

    def test_futures_work_with_as_completed(self, executor: Executor) -> None:
        futures = {executor.submit(add, i, 0): i for i in range(20)}
        seen = {futures[f]: f.result() for f in concurrent.futures.as_completed(futures, TIMEOUT)}
        assert seen == {i: i for i in range(20)}

    def test_closure_and_lambda_run(self, executor: Executor) -> None:
        factor = 7

        def times(x: int) -> int:
            return x * factor

        assert executor.submit(times, 6).result(timeout=TIMEOUT) == 42
        assert executor.submit(lambda s: s.upper(), "dna").result(timeout=TIMEOUT) == "DNA"

    def test_function_defined_in_main_runs(self, executor: Executor) -> None:
        # What a notebook cell or a script's __main__ defines: not importable by workers.
        namespace: dict[str, Any] = {"__name__": "__main__"}
        exec("def triple(x):\n    return 3 * x\n", namespace)  # noqa: S102
        assert executor.submit(namespace["triple"], 5).result(timeout=TIMEOUT) == 15

    def test_close_is_idempotent_and_final(self, executor: Executor) -> None:
        assert executor.submit(add, 1, 1).result(timeout=TIMEOUT) == 2
        executor.close()
        executor.close()
        with pytest.raises(ExecutorError, match="closed"):
            executor.submit(add, 1, 1)

    def test_context_manager_closes(self, executor: Executor) -> None:
        with executor as same:
            assert same.submit(add, 2, 2).result(timeout=TIMEOUT) == 4
        with pytest.raises(ExecutorError):
            executor.submit(add, 1, 1)


__all__ = ["ContractError", "ExecutorContract", "add", "divide", "echo", "fail", "worker_pid"]
