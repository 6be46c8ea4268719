"""The local executors pass the executor contract; a killed worker fails its call only."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from databacked.errors import ExecutorError
from databacked.executors import Executor, get_executor, known_executors
from databacked.testing.executor_contract import ExecutorContract, add, worker_pid


class TestInline(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Iterator[Executor]:
        with get_executor("inline") as ex:
            yield ex


class TestThreads(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Iterator[Executor]:
        with get_executor("threads", workers=3) as ex:
            yield ex


class TestProcesses(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Iterator[Executor]:
        with get_executor("processes", workers=2) as ex:
            yield ex


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_inline_runs_in_the_caller() -> None:
    with get_executor("inline") as ex:
        future = ex.submit(worker_pid)
        assert future.done()
        assert future.result() == os.getpid()


def test_processes_run_elsewhere() -> None:
    with get_executor("processes", workers=1) as ex:
        assert ex.submit(worker_pid).result(timeout=60) != os.getpid()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_worker_is_a_failed_future_and_the_pool_recovers() -> None:
    with get_executor("processes", workers=2) as ex:
        assert ex.submit(add, 1, 2).result(timeout=60) == 3
        doomed = ex.submit(kill_myself)
        with pytest.raises(ExecutorError, match=r"worker process .* died") as info:
            doomed.result(timeout=60)
        assert info.value.__cause__ is not None
        # The next submissions get a fresh pool and complete.
        assert [ex.submit(add, i, i).result(timeout=60) for i in range(4)] == [0, 2, 4, 6]
        assert ex.submit_batch(add, [(1, 1), (2, 2)]).result(timeout=60) == [2, 4]


def test_unknown_executor_lists_the_known_ones() -> None:
    with pytest.raises(ExecutorError, match=r"Unknown executor 'warp'.*inline.*processes.*threads"):
        get_executor("warp")


def test_aliases_and_case() -> None:
    with get_executor("Threads", workers=1) as ex:
        assert ex.name == "threads"
        assert ex.max_workers == 1
    with get_executor("loky", workers=1) as ex:
        assert ex.name == "processes"


def test_default_workers_is_one_per_core() -> None:
    with get_executor("threads") as ex:
        assert ex.max_workers == len(os.sched_getaffinity(0))


def test_zero_workers_is_a_clear_error() -> None:
    with pytest.raises(ExecutorError, match="at least one worker"):
        get_executor("processes", workers=0)


def test_executor_object_is_returned_as_is() -> None:
    with get_executor("inline") as ex:
        assert get_executor(ex) is ex


def test_a_non_executor_object_is_refused() -> None:
    with pytest.raises(ExecutorError, match="not an executor"):
        get_executor(42)  # type: ignore[arg-type]


def test_unknown_url_scheme() -> None:
    with pytest.raises(ExecutorError, match="Unknown executor URL"):
        get_executor("ftp://example.org")


def test_unexpected_option_is_an_executor_error() -> None:
    with pytest.raises(ExecutorError, match="does not accept"):
        get_executor("threads", colour="blue")


PLUGIN = """
from concurrent.futures import Future

from databacked.executors import BaseExecutor


class CountingExecutor(BaseExecutor):
    name = "counting"

    def __init__(self, workers=None):
        super().__init__()
        self.max_workers = workers or 1

    def submit(self, fn, *args):
        self._check_open()
        future = Future()
        future.set_result(fn(*args))
        return future
"""


def test_entry_point_plugin_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A small fake distribution: a module and a dist-info folder declaring the entry point.
    (tmp_path / "fake_dbk_plugin.py").write_text(PLUGIN, encoding="utf-8")
    dist = tmp_path / "fake_dbk_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-dbk-plugin\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        "[databacked.executors]\ncounting = fake_dbk_plugin:CountingExecutor\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "counting" in known_executors()
    with get_executor("counting", workers=3) as ex:
        assert ex.name == "counting"
        assert ex.max_workers == 3
        assert ex.submit(add, 20, 22).result() == 42
        assert ex.submit_batch(add, [(1, 2), (3, 4)]).result() == [3, 7]
