"""Timeouts and resources on a real dask LocalCluster: a call past its timeout fails with its
reason while its siblings finish (and is retried when it has retries); calls needing the one
GPU a worker offers never overlap, and a step asking for more than any worker offers is
refused before anything runs."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import databacked as db
from databacked.catalog import Catalog
from databacked.errors import CallTimeout, PipelineError
from databacked.executors.base import Placement
from databacked.specs.runner import run_specs
from databacked.store import Store
from databacked.testing import services
from databacked.testing.executor_contract import TIMEOUT

distributed = services.require("distributed", "dask")

from databacked.executors.dask import DaskExecutor, start_local_cluster  # noqa: E402


def _mark(marks: str, name: str, text: str) -> None:
    with open(Path(marks) / name, "a") as f:
        f.write(text + "\n")


@db.step(target="t/{x}.json", timeout=1)
def sleepy(x: int, marks: str) -> int:
    _mark(marks, "count.txt", str(x))
    time.sleep(30 if x == 0 else 0.01)
    return x


@db.step(target="r/{x}.json", timeout=1, retries=1)
def sleepy_retried(x: int, marks: str) -> int:
    return sleepy.fn(x, marks)


def _span(x: int, marks: str) -> int:
    _mark(marks, "times.txt", f"{x} start {time.time()!r}")
    time.sleep(0.4)
    _mark(marks, "times.txt", f"{x} end {time.time()!r}")
    return x


@db.step(target="gpu/{x}.json", resources={"gpus": 1})
def on_gpu(x: int, marks: str) -> int:
    return _span(x, marks)


@db.step(target="free/{x}.json")
def anywhere(x: int, marks: str) -> int:
    return _span(x, marks)


@db.step(target="two/{x}.json", resources={"gpu": 2})
def on_two_gpus(x: int, marks: str) -> int:
    _mark(marks, "times.txt", f"{x} start {time.time()!r}")
    return x


@db.step(target="modest/{x}.json", resources={"cpu": 1, "memory": "1GB"})
def modest(x: int, marks: str) -> int:
    return x


@db.step(target="greedy/{x}.json", resources={"cpus": 3})
def greedy(x: int, marks: str) -> int:
    return x


@db.pipeline
def four(marks: str) -> Any:
    return sleepy.map(x=[0, 1, 2, 3], marks=marks)


@db.pipeline
def four_retried(marks: str) -> Any:
    return sleepy_retried.map(x=[0, 1, 2, 3], marks=marks)


@db.pipeline
def gpus(marks: str) -> Any:
    return on_gpu.map(x=[0, 1, 2, 3], marks=marks)


@db.pipeline
def free(marks: str) -> Any:
    return anywhere.map(x=[0, 1, 2, 3], marks=marks)


@db.pipeline
def too_big(marks: str) -> Any:
    return on_two_gpus.map(x=[0, 1], marks=marks)


@db.pipeline
def modest_pipeline(marks: str) -> Any:
    return modest.map(x=[0, 1], marks=marks)


@db.pipeline
def greedy_pipeline(marks: str) -> Any:
    return greedy.map(x=[0, 1], marks=marks)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """One worker process with two threads and one GPU, in the spelling dask users write."""
    cluster = start_local_cluster(1, threads_per_worker=2, resources={"GPU": 1})
    yield cluster
    cluster.close()


def _run(pipeline: Any, cluster: Any, tmp_path: Path) -> Any:
    with DaskExecutor(cluster=cluster) as executor:
        return db.run(
            pipeline,
            str(tmp_path),
            store=str(tmp_path / "data"),
            catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
            executor=executor,
        )


def test_a_call_past_its_timeout_fails_and_its_siblings_finish(
    cluster: Any, tmp_path: Path
) -> None:
    result = _run(four, cluster, tmp_path)
    calls = result.calls  # in the order of the map: x = 0, 1, 2, 3
    assert list(calls["status"]) == ["failed", "ran", "ran", "ran"]
    assert calls["error"][0] == "CallTimeout: timeout after 1 s"
    with Catalog.open(tmp_path / "catalog.db") as catalog:
        [attempt] = [c for c in catalog.calls_of_run(result.run_id) if c.status == "failed"]
    assert attempt.error_message == "timeout after 1 s"
    assert sorted((tmp_path / "data" / "t").iterdir()) == [
        tmp_path / "data" / "t" / f"{x}.json" for x in (1, 2, 3)
    ]


def test_a_timed_out_call_is_retried(cluster: Any, tmp_path: Path) -> None:
    result = _run(four_retried, cluster, tmp_path)
    assert result.counts() == {"ran": 3, "cached": 0, "failed": 1, "skipped": 0}
    assert (tmp_path / "count.txt").read_text().split().count("0") == 2


def _spans(tmp_path: Path) -> list[tuple[float, float]]:
    marks: dict[str, dict[str, float]] = {}
    for line in (tmp_path / "times.txt").read_text().splitlines():
        x, what, at = line.split()
        marks.setdefault(x, {})[what] = float(at)
    return sorted((m["start"], m["end"]) for m in marks.values())


def test_calls_needing_the_one_gpu_never_overlap(cluster: Any, tmp_path: Path) -> None:
    result = _run(gpus, cluster, tmp_path)
    assert result.counts()["ran"] == 4
    spans = _spans(tmp_path)
    assert len(spans) == 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start  # one at a time, though the worker has two threads


def test_calls_needing_nothing_do_overlap_on_the_two_threads(cluster: Any, tmp_path: Path) -> None:
    # The control: without the resource the same calls share the worker's two threads.
    result = _run(free, cluster, tmp_path)
    assert result.counts()["ran"] == 4
    spans = _spans(tmp_path)
    assert any(end > start for (_, end), (start, _) in itertools.pairwise(spans))


def test_a_step_asking_more_than_any_worker_offers_fails_before_running(
    cluster: Any, tmp_path: Path
) -> None:
    with pytest.raises(PipelineError) as info:
        _run(too_big, cluster, tmp_path)
    message = str(info.value)
    assert message.startswith("Step on_two_gpus asks for gpus=2 but no worker of the dask")
    assert "they offer GPU=1" in message
    assert not (tmp_path / "times.txt").exists()


def stuck(seconds: float) -> str:
    """As a call stuck in C code: the timer's signal never reaches Python."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
    return "slept"


def test_a_call_the_timer_cannot_stop_has_its_child_process_killed(cluster: Any) -> None:
    placement = Placement(timeouts=(1.0,), backstop=2.0)  # killed 3 s after it started
    with DaskExecutor(cluster=cluster) as executor:
        future = executor.place(placement, stuck, 30)
        with pytest.raises(CallTimeout, match=r"^timeout after 1 s; the call did not stop"):
            future.result(timeout=TIMEOUT)
        assert executor.submit(os.getpid).result(timeout=TIMEOUT) > 0  # the worker goes on


def test_datum_timeout_stops_a_command_on_dask(
    cluster: Any, tmp_path: Path, slow_copy_spec: Store
) -> None:
    store = slow_copy_spec
    with Catalog.open(tmp_path / "catalog.db") as catalog, DaskExecutor(cluster=cluster) as ex:
        result = run_specs(tmp_path / "pipelines", store=store, catalog=catalog, executor=ex)
    [failed] = result.of("copy", "failed")
    assert failed.error == "timeout after 1 s"
    assert sorted(r.status for r in result.of("copy")) == ["failed", "ran", "ran"]
    assert store.read_bytes("copy/fast1.txt") == b"fast1"
    assert not store.exists("copy/slow.txt")


def test_our_local_cluster_offers_its_threads_and_memory(cluster: Any, tmp_path: Path) -> None:
    assert _run(modest_pipeline, cluster, tmp_path).counts()["ran"] == 2
    with pytest.raises(PipelineError, match=r"asks for cpus=3 but .*they offer GPU=1, cpus=2, "):
        _run(greedy_pipeline, cluster, tmp_path)
