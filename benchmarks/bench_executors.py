"""Executor benchmarks: databacked on processes, Dask and Celery against the bare engines.

``run()`` returns one dict per case for ``benchmarks/run.py``, measured in one run:

* per-call overhead: 2,000 trivial calls through ``db.run`` (fresh store and SQLite catalog,
  cold; median of 3) on each executor, against the same 2,000 trivial function calls on the
  bare engine: loky's ``map`` (processes), ``distributed.Client.map`` + ``gather`` (Dask), a Celery
  ``group`` on the same broker (Celery). Equal work: ``db.run`` sends many short calls in
  chunks (the scheduler's ``_chunk_size``: 64 calls a task here), so every baseline sends the
  same chunks -- ``map(chunksize=64)``, one Dask task and one Celery task per chunk of 64 --
  and each row says so. Goal: within 1.5x.
* the peers' imaging workload (``../shared/peers``, ``run_databacked.images``) at
  ``DATABACKED_BENCH_FOVS`` fields (default 200) on Dask and Celery, against processes
  (best of 2 interleaved rounds). Goal: within 1.3x.

Clusters and workers (a LocalCluster of 2 worker processes, Celery workers of 2 processes
each) are started and warmed outside the timings, and stopped at the end. Celery uses
``DATABACKED_TEST_AMQP_URL`` (default the local RabbitMQ) with ``DATABACKED_TEST_REDIS_URL``
results; when the broker is not reachable its cases are left out with a note.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import databacked as db

HERE = Path(__file__).resolve().parent
PEERS_DIR = Path(os.environ.get("PEERS_DIR", HERE.parent.parent / "shared" / "peers")).resolve()
PY = sys.executable
N_CALLS = 2000
REPEATS = 3
WORKLOAD_ROUNDS = 2
WORKERS = 2
START = 60.0  # seconds a worker may take to say it is ready
OVERHEAD_GOAL = 1.5
WORKLOAD_GOAL = 1.3
BARE_TASK = "bench.trivial_chunk"
_BARE_ENV = (
    "DATABACKED_BENCH_BARE_BROKER",
    "DATABACKED_BENCH_BARE_BACKEND",
    "DATABACKED_BENCH_BARE_QUEUE",
)


def trivial(i: int) -> int:
    """The bare engines' task."""
    return i + 1


def trivial_chunk(chunk: list[int]) -> list[int]:
    """The bare engines' task for one chunk: the work db.run puts in one executor task."""
    return [trivial(i) for i in chunk]


CHUNK = 64
"""Calls per executor task on both sides: the step says ``batch=CHUNK`` (db.run otherwise
sizes batches from observed call durations), the bare engines send chunks of it."""


def db_chunk(n: int, workers: int) -> int:
    """How many calls db.run puts in one executor task here: the step's ``batch=``."""
    return CHUNK


def _chunks(n: int, size: int) -> list[list[int]]:
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]


@db.step(batch=CHUNK)
def trivial_step(i: int) -> int:
    """The same work as a databacked step (persisted, as a step is by default)."""
    return i + 1


@db.pipeline
def trivial_calls(n: int) -> list[Any]:
    return trivial_step.map(i=list(range(n)))


# -- Celery: a plain app with the same settings as databacked's, for the bare baseline -----


def bare_celery_app(broker: str, backend: str, queue: str) -> Any:
    """databacked's Celery configuration plus one plain task: the 'bare engine'."""
    from databacked.executors.celery import create_app

    app = create_app(broker, backend, queue=queue)
    app.task(name=BARE_TASK)(trivial_chunk)
    return app


def __getattr__(name: str) -> Any:
    # `celery -A bench_executors:bare_app worker` builds the app from the environment.
    if name == "bare_app" and all(key in os.environ for key in _BARE_ENV):
        return bare_celery_app(*(os.environ[key] for key in _BARE_ENV))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a worker started in its own session, pool children included."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=15)


@contextlib.contextmanager
def _worker(command: list[str], log: Path, extra_env: dict[str, str]) -> Iterator[None]:
    env = {**os.environ, **extra_env}
    # Steps and the bare task are imported by reference: the driver's path goes along.
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p or os.getcwd() for p in sys.path))
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START
        while b" ready." not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"a celery worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield
    finally:
        _stop(process)


@contextlib.contextmanager
def _celery(work: Path) -> Iterator[dict[str, Any] | None]:
    """databacked's executor and a bare app, each with a 2-process worker; None if no broker."""
    try:
        from databacked.executors.celery import CeleryExecutor
    except ImportError as exc:
        print(f"  ! celery is not installed ({exc}); its cases are left out")
        yield None
        return
    broker = os.environ.get("DATABACKED_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    backend = os.environ.get("DATABACKED_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    tag = uuid.uuid4().hex[:8]
    queue, bare_queue = f"bench-db-{tag}", f"bench-bare-{tag}"
    try:
        executor = CeleryExecutor(WORKERS, broker=broker, backend=backend, queue=queue)
    except db.DatabackedError as exc:
        print(f"  ! {exc} Celery cases are left out.")
        yield None
        return
    ours = [PY, "-c", "from databacked.cli import main; main()", "worker", "--broker", broker]
    ours += ["--backend", backend, "--queue", queue, f"--concurrency={WORKERS}"]
    # A databacked worker runs only steps of modules it may import (docs/wire-protocol.md).
    ours += ["--import", "bench_executors", "--import", "run_databacked"]
    bare = [PY, "-m", "celery", "-A", "bench_executors:bare_app", "worker", "--pool=prefork"]
    bare += [f"--concurrency={WORKERS}", f"--queues={bare_queue}", "--loglevel=INFO"]
    bare += ["--without-mingle", "--without-gossip"]
    bare_env = dict(zip(_BARE_ENV, (broker, backend, bare_queue), strict=True))
    app = bare_celery_app(broker, backend, bare_queue)
    try:
        with (
            executor,
            _worker(ours, work / "celery-databacked.log", {}),
            _worker(bare, work / "celery-bare.log", bare_env),
        ):
            yield {"executor": executor, "app": app}
    finally:
        with app.connection_for_write() as conn:
            for name in (queue, bare_queue):
                with contextlib.suppress(Exception):
                    conn.default_channel.queue_delete(name)
        app.close()


# -- the cases -----------------------------------------------------------------------------


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _db_run(pipeline: Any, arg: Any, executor: Any, folder: Path) -> float:
    """Wall time of one cold db.run in a fresh store and SQLite catalog."""
    store, catalog = folder / "store", f"sqlite:///{folder / 'catalog.db'}"
    start = time.perf_counter()
    result = db.run(pipeline, arg, store=str(store), catalog=catalog, executor=executor)
    seconds = time.perf_counter() - start
    if not result.ok:
        raise RuntimeError(f"a benchmark run failed on {executor.name}: {result.summary()}")
    return seconds


def _row(case: str, seconds: float, baseline: str | None, base: float | None, goal: float | None):
    ratio = seconds / base if base else None
    row: dict[str, Any] = {
        "section": "Executors",
        "case": case,
        "seconds": round(seconds, 3),
        "baseline": baseline,
        "baseline_seconds": round(base, 3) if base else None,
        "ratio": round(ratio, 3) if ratio else None,
    }
    if goal is not None and ratio is not None:
        row.update(goal=f"<= {goal}x", goal_met=ratio <= goal)
    return row


def _bare_processes(chunk: int) -> None:
    from loky import get_reusable_executor

    pool = get_reusable_executor(max_workers=WORKERS)
    assert list(pool.map(trivial, range(N_CALLS), chunksize=chunk))[-1] == N_CALLS


def _bare_dask(client: Any, chunk: int) -> None:
    futures = client.map(trivial_chunk, _chunks(N_CALLS, chunk), pure=False)
    assert client.gather(futures)[-1][-1] == N_CALLS


def _bare_celery(app: Any, chunk: int) -> None:
    from celery import group

    job = group(app.signature(BARE_TASK, args=(c,)) for c in _chunks(N_CALLS, chunk))
    assert job.apply_async().get(timeout=600)[-1][-1] == N_CALLS


def _overhead(
    executors: dict[str, Any], bare: dict[str, tuple[str, Callable]], work: Path, chunk: int
):
    rows = []
    for name, executor in executors.items():
        print(f"  {name}: {N_CALLS:,} trivial calls through db.run, and on the bare engine")
        label, baseline = bare[name]
        # Medians of a few alternating runs: one run on a shared machine is mostly noise.
        bases, runs = [], []
        for attempt in range(REPEATS):
            bases.append(_seconds(baseline))
            folder = work / f"overhead-{name}-{attempt}"
            runs.append(_db_run(trivial_calls, N_CALLS, executor, folder))
        base, ours = statistics.median(bases), statistics.median(runs)
        row = _row(f"{name}: {N_CALLS:,} trivial calls (cold)", ours, label, base, OVERHEAD_GOAL)
        row["note"] = (
            f"equal work: both sides {chunk} calls a task; "
            f"{ours / N_CALLS * 1e3:.2f} ms a call; bare {base / N_CALLS * 1e3:.2f} ms"
        )
        rows.append(row)
    return rows


def _workload(executors: dict[str, Any], work: Path, fovs: int):
    if not (PEERS_DIR / "common.py").exists():
        print(f"  ! the peers' workload is not at {PEERS_DIR}; set PEERS_DIR")
        return []
    import run_databacked  # puts PEERS_DIR on sys.path
    from common import list_inputs

    data = work / "fovs"
    command = [PY, str(PEERS_DIR / "gen_data.py"), "--n", str(fovs), "--data", str(data)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    paths = list_inputs(str(data), fovs)
    # Best of interleaved rounds, so a burst of load on a shared machine hits every executor.
    seconds: dict[str, float] = {}
    for attempt in range(WORKLOAD_ROUNDS):
        for name, executor in executors.items():
            print(f"  {name}: the imaging workload at {fovs} fields, cold (round {attempt + 1})")
            folder = work / f"images-{name}-{attempt}"
            wall = _db_run(run_databacked.images, paths, executor, folder)
            seconds[name] = min(wall, seconds.get(name, wall))
    rows = []
    for name, value in seconds.items():
        case = f"{name}: images workload, {fovs} fields (cold)"
        if name == "processes":
            rows.append(_row(case, value, None, None, None))
        else:
            rows.append(_row(case, value, "processes", seconds["processes"], WORKLOAD_GOAL))
    return rows


def run() -> list[dict]:
    from databacked.executors import get_executor
    from databacked.executors.dask import start_local_cluster

    fovs = int(os.environ.get("DATABACKED_BENCH_FOVS", "200"))
    if (PEERS_DIR / "common.py").exists():
        sys.path.insert(0, str(HERE))
        import run_databacked  # noqa: F401  (before the workers start: they inherit the path)
    rows: list[dict] = []
    chunk = db_chunk(N_CALLS, WORKERS)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-executors-")))
        processes = stack.enter_context(get_executor("processes", workers=WORKERS))
        cluster = start_local_cluster(WORKERS)
        stack.callback(cluster.close)
        dask = stack.enter_context(get_executor("dask", cluster=cluster))
        executors: dict[str, Any] = {"processes": processes, "dask": dask}
        bare: dict[str, tuple[str, Callable]] = {
            "processes": (f"loky executor.map(chunksize={chunk})", lambda: _bare_processes(chunk)),
            "dask": (
                f"distributed Client.map + gather, {chunk} calls a task",
                lambda: _bare_dask(dask.client, chunk),
            ),
        }
        celery = stack.enter_context(_celery(work))
        if celery is not None:
            executors["celery"] = celery["executor"]
            bare["celery"] = (
                f"Celery group, {chunk} calls a task",
                lambda: _bare_celery(celery["app"], chunk),
            )
        # Warm every engine (pools spawned, connections open) outside the timings.
        for name, executor in executors.items():
            assert executor.submit(trivial_step, 1).result(timeout=START) == 2, name
            bare[name][1]()
        rows += _overhead(executors, bare, work, chunk)
        rows += _workload(executors, work, fovs)
    return rows


if __name__ == "__main__":
    # Import by name, not as __main__, so workers can import the steps and the bare task.
    sys.path.insert(0, str(HERE))
    import bench_executors

    for result_row in bench_executors.run():
        print(result_row)
