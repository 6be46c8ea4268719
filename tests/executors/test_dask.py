"""The dask executor on real clusters: a LocalCluster, and `dask scheduler`/`dask worker`
processes reached by URL; a worker killed mid-call, unreachable schedulers, Slurm scripts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import databacked as db
from databacked.config import DaskSettings
from databacked.errors import ExecutorError
from databacked.executors import Executor, get_executor
from databacked.testing import services
from databacked.testing.executor_contract import TIMEOUT, ExecutorContract, add

distributed = services.require("distributed", "dask")

from databacked.executors.dask import (  # noqa: E402  (after the skip: needs distributed)
    DaskExecutor,
    start_local_cluster,
)

DASK_CLI = Path(sys.executable).with_name("dask")


@db.step(target="squares/{x}.json")
def square(x: int) -> dict:
    return {"x": x, "square": x * x}


@db.step(target="survivors/{x}.json")
def survivor(x: int, marker: str) -> int:
    """Kills the worker process it runs in, once: the first time x == 0 runs."""
    if x == 0 and not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@db.step(target="total.json")
def total(items: list) -> int:
    return sum(item["square"] for item in items)


@db.pipeline
def squares(xs: list) -> Any:
    return total(square.map(x=xs))


@db.pipeline
def survivors(xs: list, marker: str) -> Any:
    return survivor.map(x=xs, marker=[marker] * len(xs))


def _hashes(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): db.hash_file(path)
        for path in sorted(folder.rglob("*.json"))
        if ".databacked" not in path.parts
    }


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def pid_after_a_kill(pid_file: str) -> int:
    """First attempt: record this worker's pid and wait to be killed. A retry returns at once."""
    path = Path(pid_file)
    if not path.exists():
        path.write_text(str(os.getpid()))
        time.sleep(60)
    return os.getpid()


# -- (a) a LocalCluster of two worker processes, shared by the module ------------------------


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[Any]:
    cluster = start_local_cluster(2)
    yield cluster
    cluster.close()


class TestDaskLocalCluster(ExecutorContract):
    @pytest.fixture
    def executor(self, local_cluster: Any) -> Iterator[Executor]:
        with get_executor("dask", cluster=local_cluster) as ex:
            yield ex

    def test_cluster_is_on_loopback_with_two_workers(self, executor: DaskExecutor) -> None:
        assert executor.address.startswith("tcp://127.0.0.1:")
        workers = executor.client.scheduler_info()["workers"]
        assert len(workers) == 2
        assert all(address.startswith("tcp://127.0.0.1:") for address in workers)
        assert executor.max_workers == 2

    def test_identical_calls_each_run(self, executor: Executor) -> None:
        # Dask would merge two pure calls with equal arguments into one task.
        first, second = (executor.submit(os.urandom, 16) for _ in range(2))
        assert first.result(timeout=TIMEOUT) != second.result(timeout=TIMEOUT)

    def test_upstream_futures_resolve_on_the_workers(self, executor: DaskExecutor) -> None:
        upstream = executor.submit(add, 1, 2)
        assert executor.submit(add, upstream, 10).result(timeout=TIMEOUT) == 13
        remote = executor.client.submit(add, 20, 1, pure=False)
        assert executor.submit(add, remote, 1).result(timeout=TIMEOUT) == 22

    def test_unpicklable_argument_fails_its_call_only(self, executor: Executor) -> None:
        future = executor.submit(str, threading.Lock())
        with pytest.raises(ExecutorError, match="could not serialise str"):
            future.result(timeout=TIMEOUT)
        assert executor.submit(add, 1, 2).result(timeout=TIMEOUT) == 3

    def test_close_fails_calls_still_running(self, executor: Executor) -> None:
        future = executor.submit(time.sleep, 3)
        executor.close()
        with pytest.raises(ExecutorError, match="closed before this call finished"):
            future.result(timeout=TIMEOUT)

    def test_close_leaves_a_given_cluster_running(self, local_cluster: Any) -> None:
        executor = DaskExecutor(cluster=local_cluster)
        executor.close()
        assert local_cluster.status.name == "running"


def test_pipeline_on_dask_matches_inline_byte_for_byte(local_cluster: Any, tmp_path: Path) -> None:
    xs = list(range(6))
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    inline = db.run(squares, xs, store=tmp_path / "inline", catalog=catalog, executor="inline")
    with DaskExecutor(cluster=local_cluster) as executor:
        on_dask = db.run(squares, xs, store=tmp_path / "dask", catalog=catalog, executor=executor)
    assert inline.ok and on_dask.ok
    assert on_dask.value.load() == inline.value.load() == sum(x * x for x in xs)
    assert len(_hashes(tmp_path / "dask")) == len(xs) + 1
    assert _hashes(tmp_path / "dask") == _hashes(tmp_path / "inline")


def test_worker_killed_mid_run_and_the_run_completes(local_cluster: Any, tmp_path: Path) -> None:
    marker = tmp_path / "killed-once"
    with DaskExecutor(cluster=local_cluster) as executor:
        result = db.run(
            survivors,
            list(range(4)),
            str(marker),
            store=tmp_path / "data",
            catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
            executor=executor,
        )
        # The nanny restarts the killed worker; wait so later tests see two workers again.
        executor.client.wait_for_workers(2, timeout=TIMEOUT)
    assert marker.exists(), "the step never killed its worker"
    assert result.ok, result.summary()
    assert [artifact.load() for artifact in result.value] == [0, 1, 2, 3]


def test_dask_starts_and_closes_its_own_cluster() -> None:
    # The options are exactly the [dask] configuration section; allowed_failures=0 turns
    # the first dead worker into KilledWorker.
    options = DaskSettings(n_workers=1).model_dump()
    executor = get_executor("dask", allowed_failures=0, **options)
    cluster = executor.cluster
    try:
        assert executor.submit(add, 2, 2).result(timeout=TIMEOUT) == 4
        with pytest.raises(ExecutorError, match="dask executor") as caught:
            executor.submit(kill_myself).result(timeout=TIMEOUT)
        assert isinstance(caught.value.__cause__, distributed.scheduler.KilledWorker)
    finally:
        executor.close()
    assert cluster.status.name == "closed"


# -- (b) `dask scheduler` and two `dask worker` processes, reached by URL --------------------


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process group started with start_new_session: TERM, then KILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def scheduler_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real scheduler and two nanny-managed workers on 127.0.0.1; its scheduler file."""
    folder = tmp_path_factory.mktemp("dask-cli")
    path = folder / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    log = (folder / "cluster.log").open("wb")
    common: dict[str, Any] = {
        "env": env,
        "cwd": folder,
        "start_new_session": True,
        "stdin": subprocess.DEVNULL,
        "preexec_fn": services.die_with_parent,
        "stdout": log,
        "stderr": log,
    }
    loopback = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]
    scheduler = [DASK_CLI, "scheduler", *loopback, "--port", "0", "--no-dashboard"]
    worker = [DASK_CLI, "worker", *loopback, "--nthreads", "1", "--death-timeout", "60"]
    processes = [subprocess.Popen([*scheduler, "--scheduler-file", str(path)], **common)]
    try:
        for _ in range(2):
            processes.append(subprocess.Popen([*worker, "--scheduler-file", str(path)], **common))
        deadline = time.monotonic() + 60
        while not path.exists():  # Client would wait for the file forever
            assert time.monotonic() < deadline, (folder / "cluster.log").read_text()
            time.sleep(0.05)
        with distributed.Client(scheduler_file=str(path), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield path
    finally:
        for process in reversed(processes):
            _stop(process)
        log.close()


@pytest.fixture(scope="module")
def scheduler_url(scheduler_file: Path) -> str:
    import json

    address = json.loads(scheduler_file.read_text())["address"]
    return address.replace("tcp://", "dask://")


class TestDaskSchedulerProcess(ExecutorContract):
    @pytest.fixture
    def executor(self, scheduler_url: str) -> Iterator[Executor]:
        with get_executor(scheduler_url) as ex:
            yield ex

    def test_connects_to_the_running_scheduler(self, executor: DaskExecutor) -> None:
        assert executor.address.startswith("tcp://127.0.0.1:")
        assert executor.max_workers == 2
        # Workers run in the `dask worker` processes, not in this one.
        assert executor.submit(os.getpid).result(timeout=TIMEOUT) != os.getpid()


def test_scheduler_file_option(scheduler_file: Path) -> None:
    with get_executor("dask", scheduler_file=str(scheduler_file)) as executor:
        assert executor.submit(add, 40, 2).result(timeout=TIMEOUT) == 42


def test_killed_worker_call_is_retried_elsewhere(scheduler_url: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with get_executor(scheduler_url) as executor:
        future = executor.submit(pid_after_a_kill, str(pid_file))
        deadline = time.monotonic() + TIMEOUT
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the call never started on a worker"
            assert not future.done(), future
            time.sleep(0.05)
        victim = int(pid_file.read_text())
        os.kill(victim, signal.SIGKILL)
        # The scheduler reschedules the task; the retry sees the pid file and returns.
        assert future.result(timeout=TIMEOUT) != victim


# -- bad input ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_scheduler_is_a_clear_error() -> None:
    port = _free_port()
    with pytest.raises(ExecutorError) as caught:
        get_executor(f"dask://127.0.0.1:{port}", timeout=2)
    message = str(caught.value)
    assert f"Cannot reach the dask scheduler at tcp://127.0.0.1:{port}" in message
    assert "`dask scheduler` runs there" in message


def test_missing_scheduler_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    with pytest.raises(ExecutorError, match=r"nowhere\.json"):
        get_executor("dask", scheduler_file=str(missing), timeout=1)


def test_bad_cluster_class_is_a_clear_error() -> None:
    with pytest.raises(ExecutorError, match="cannot be imported"):
        get_executor("dask", cluster_class="dask_nowhere.SLURMCluster")
    with pytest.raises(ExecutorError, match="names no class"):
        get_executor("dask", cluster_class="distributed.NoSuchCluster")


def test_without_distributed_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an absent package looks like
    with pytest.raises(ExecutorError, match=r"pip install 'databacked\[dask\]'"):
        DaskExecutor(workers=1)


def test_bad_worker_count_is_refused() -> None:
    with pytest.raises(ExecutorError, match="at least one worker"):
        get_executor("dask", workers=0)


# -- Slurm through dask-jobqueue: the generated job script (no Slurm runs here) -------------


def test_slurm_cluster_job_script_from_configuration() -> None:
    services.require("dask_jobqueue", "dask")
    settings = DaskSettings(
        cluster_class="dask_jobqueue.SLURMCluster",
        cluster_kwargs={
            "queue": "imaging",
            "account": "cellbio",
            "cores": 8,
            "processes": 2,
            "memory": "32GB",
            "walltime": "04:00:00",
            "job_extra_directives": ["--gres=gpu:1"],
            "python": "/shared/envs/databacked/bin/python",
            # No Slurm here: keep the scheduler this creates on loopback, without dashboard.
            "scheduler_options": {
                "host": "127.0.0.1",
                "dashboard": False,
                "dashboard_address": "127.0.0.1:0",
            },
        },
    )
    with get_executor("dask", **settings.model_dump()) as executor:
        script = executor.cluster.job_script()
        address = executor.address
    assert "#SBATCH -p imaging" in script
    assert "#SBATCH -A cellbio" in script
    assert "#SBATCH --cpus-per-task=8" in script
    assert "#SBATCH -t 04:00:00" in script
    assert "#SBATCH --gres=gpu:1" in script
    assert f"/shared/envs/databacked/bin/python -m distributed.cli.dask_worker {address}" in script
    assert "--nworkers 2" in script
    assert executor.cluster.status.name == "closed"
