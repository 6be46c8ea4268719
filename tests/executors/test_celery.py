"""The celery executor against the real RabbitMQ and Redis on 127.0.0.1, with worker processes
started by ``databacked worker``: the contract, a pipeline giving the same bytes as inline, a
worker killed mid-call whose call is redelivered, and an unreachable broker."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

import databacked as db
from databacked.errors import ExecutorError
from databacked.executors import Executor, get_executor
from databacked.testing import services
from databacked.testing.executor_contract import TIMEOUT, ExecutorContract, add

services.require("celery", "celery")  # skipped locally without it; a failure under CI=true

from databacked.executors.celery import TASK, CeleryExecutor, create_app  # noqa: E402

WORKER_START = 60.0  # seconds a worker may take to say "ready"


@contextmanager
def celery_worker(
    broker: str,
    queue: str | None,
    log: Path,
    *,
    backend: str | None = None,
    concurrency: int = 2,
    project: Path | None = None,
    extra: tuple[str, ...] = (),
    key: str | None = None,
    env_extra: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``databacked worker`` process, ready to consume; killed with its pool afterwards.

    It starts in ``project``: the folder whose modules (the tests' steps) it may run. With
    ``queue`` None it consumes only the queues ``extra`` names (``--queues``).
    """
    env = {**os.environ, **(env_extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p or os.getcwd() for p in sys.path))
    env.pop("DATABACKED_WORKER_KEY", None)
    if key:
        env["DATABACKED_WORKER_KEY"] = key
    command = [sys.executable, "-c", "from databacked.cli import main; main()", "worker"]
    command += ["--broker", broker, "--concurrency", str(concurrency)]
    command += ["--queue", queue] if queue else []
    command += list(extra)
    if backend:
        command += ["--backend", backend]
    with log.open("wb") as out:
        # Its own session, so the pool's children are stopped together with it.
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=project, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + WORKER_START
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the celery worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    # Pool children outlive a killed parent: end the whole session either way.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)


def _delete_queue(broker: str, queue: str) -> None:
    app = create_app(broker, "rpc://", queue=queue)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)
    app.close()


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder on sys.path (and so on the workers' PYTHONPATH) for modules tests write."""
    folder = tmp_path_factory.mktemp("celery_modules")
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


def write_module(folder: Path, stem: str, source: str) -> Any:
    import importlib

    name = f"{stem}_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def rabbit(
    amqp_url: str, redis_url: str, modules: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """One worker (2 processes) on a queue of its own, so parallel sessions do not mix."""
    queue = f"databacked-test-{uuid.uuid4().hex[:12]}"
    log = tmp_path_factory.mktemp("celery_worker") / "worker.log"
    try:
        with celery_worker(amqp_url, queue, log, backend=redis_url, project=modules):
            yield {"broker": amqp_url, "backend": redis_url, "queue": queue}
    finally:
        _delete_queue(amqp_url, queue)


class TestCelery(ExecutorContract):
    @pytest.fixture
    def executor(self, rabbit: dict[str, str]) -> Iterator[Executor]:
        with get_executor(rabbit["broker"], workers=2, **_options(rabbit)) as ex:
            yield ex

    # Messages are JSON only: functions travel by reference, so what a worker cannot import
    # is a clear error on the future, and the executor goes on.
    def test_closure_and_lambda_run(self, executor: Executor) -> None:
        future = executor.submit(lambda s: s.upper(), "dna")
        with pytest.raises(ExecutorError, match=r"celery executor.*lambda"):
            future.result(timeout=TIMEOUT)
        assert executor.submit(add, 1, 2).result(timeout=TIMEOUT) == 3

    def test_function_defined_in_main_runs(self, executor: Executor) -> None:
        namespace: dict[str, Any] = {"__name__": "__main__"}
        exec("def triple(x):\n    return 3 * x\n", namespace)
        with pytest.raises(ExecutorError, match=r"celery executor.*__main__"):
            executor.submit(namespace["triple"], 5).result(timeout=TIMEOUT)


def _options(service: dict[str, str]) -> dict[str, str]:
    return {"backend": service["backend"], "queue": service["queue"]}


PIPELINE = """
import numpy as np
import pandas as pd
import databacked as db


@db.step(target="images/{i}.npy")
def make(i: int) -> np.ndarray:
    return np.arange(12, dtype=np.float32).reshape(3, 4) * i


@db.step(target="tables/{i}.csv")
def measure(i: int, image: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"i": [i], "total": [float(image.sum())]})


@db.step(target="summary.parquet")
def summarize(tables: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(tables, ignore_index=True)


@db.pipeline
def small(n: int):
    ids = list(range(n))
    images = make.map(i=ids)
    tables = measure.map(i=ids, image=images)
    return summarize(tables=tables)
"""


def _hashes(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store)): db.hash_file(p)
        for p in sorted(store.rglob("*"))
        if p.is_file() and ".databacked" not in p.parts
    }


def test_pipeline_on_celery_matches_inline(
    tmp_path: Path, modules: Path, rabbit: dict[str, str]
) -> None:
    mod = write_module(modules, "celery_pipeline", PIPELINE)
    hashes = {}
    for name in ("inline", "celery"):
        executor: Any = name
        if name == "celery":
            executor = CeleryExecutor(address=rabbit["broker"], workers=2, **_options(rabbit))
        try:
            result = db.run(
                mod.small,
                3,
                store=str(tmp_path / name),
                catalog=f"sqlite:///{tmp_path / name}.db",
                executor=executor,
            )
        finally:
            if name == "celery":
                executor.close()
        assert result.ok, result.summary()
        assert result.counts()["ran"] == 7
        hashes[name] = _hashes(tmp_path / name)
    assert len(hashes["inline"]) == 7
    assert hashes["celery"] == hashes["inline"]


HOLD = """
import os
import time
from pathlib import Path

import databacked as db


@db.step(target="held/{i}.json")
def hold(i: int, folder: str) -> dict:
    # The first attempt waits to be killed; the redelivered one finishes.
    marks = Path(folder)
    first = not any(marks.iterdir())
    (marks / f"started-{os.getpid()}").touch()
    if first:
        time.sleep(120)
    return {"i": i}


@db.pipeline
def held(folder: str):
    return hold(i=1, folder=folder)
"""


def test_worker_killed_mid_call_has_the_call_redelivered(
    tmp_path: Path, modules: Path, amqp_url: str, redis_url: str
) -> None:
    mod = write_module(modules, "celery_hold", HOLD)
    marks = tmp_path / "marks"
    marks.mkdir()
    queue = f"databacked-test-kill-{uuid.uuid4().hex[:12]}"
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    runs: list[Any] = []
    try:
        with CeleryExecutor(address=amqp_url, backend=redis_url, queue=queue) as ex:
            run = threading.Thread(
                target=lambda: runs.append(
                    db.run(
                        mod.held,
                        str(marks),
                        store=str(tmp_path / "data"),
                        catalog=f"sqlite:///{tmp_path / 'c.db'}",
                        executor=ex,
                    )
                )
            )
            with celery_worker(
                amqp_url, queue, a_log, backend=redis_url, concurrency=1, project=modules
            ) as first:
                run.start()
                _wait_for(lambda: any(marks.iterdir()), "the first worker to start the call")
                os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool, mid-call
                first.wait(timeout=15)
            assert run.is_alive()  # the call is not lost: the run waits for its redelivery
            with celery_worker(
                amqp_url, queue, b_log, backend=redis_url, concurrency=1, project=modules
            ):
                run.join(timeout=60)
        assert not run.is_alive()
        (result,) = runs
        assert result.ok, result.summary()
        assert result.counts()["ran"] == 1
        assert len(list(marks.iterdir())) == 2
        assert (tmp_path / "data" / "held" / "1.json").is_file()
        assert b"databacked.run_wire" in b_log.read_bytes()
    finally:
        _delete_queue(amqp_url, queue)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_redis_broker_runs_calls(tmp_path: Path, redis_url: str) -> None:
    queue = f"databacked-test-redis-{uuid.uuid4().hex[:12]}"
    with (
        celery_worker(redis_url, queue, tmp_path / "w.log"),
        get_executor(redis_url, queue=queue) as ex,
    ):
        assert ex.submit(add, 20, 22).result(timeout=TIMEOUT) == 42
        results = ex.submit_batch(add, [(1, 1), (1, "x")]).result(timeout=TIMEOUT)
    assert results[0] == 2
    assert isinstance(results[1].exception, TypeError)


def test_rpc_backend_is_the_default_with_rabbitmq(
    tmp_path: Path, amqp_url: str, modules: Path
) -> None:
    queue = f"databacked-test-rpc-{uuid.uuid4().hex[:12]}"
    try:
        with (
            celery_worker(amqp_url, queue, tmp_path / "w.log"),
            get_executor(f"amqp://{amqp_url.split('://', 1)[1]}", queue=queue) as ex,
        ):
            assert ex.app.conf.result_backend == "rpc://"
            futures = [ex.submit(add, i, 1) for i in range(20)]
            assert [f.result(timeout=TIMEOUT) for f in futures] == list(range(1, 21))
    finally:
        _delete_queue(amqp_url, queue)


@pytest.mark.parametrize(
    "url", ["amqp://guest:s3cret@127.0.0.1:1//", "redis://:s3cret@127.0.0.1:1/0"]
)
def test_unreachable_broker_is_a_clear_error(url: str) -> None:
    with pytest.raises(
        ExecutorError, match=r"Cannot reach the Celery broker at .*127\.0\.0\.1:1"
    ) as info:
        get_executor(url)
    message = str(info.value)
    assert "s3cret" not in message
    assert "***" in message
    assert "Check that" in message


def test_worker_command_without_broker_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABACKED_CELERY")}
    proc = subprocess.run(
        [sys.executable, "-c", "from databacked.cli import main; main()", "worker"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--broker" in proc.stderr


def test_worker_command_with_unreachable_broker_fails_fast(tmp_path: Path) -> None:
    cli = [sys.executable, "-c", "from databacked.cli import main; main()"]
    proc = subprocess.run(
        [*cli, "worker", "--broker", "amqp://guest:s3cret@127.0.0.1:1//"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Cannot reach the Celery broker at amqp://guest:***@127.0.0.1:1//" in proc.stderr
    assert "s3cret" not in proc.stderr


def test_worker_without_the_steps_module_fails_the_call_clearly(
    modules: Path, rabbit: dict[str, str]
) -> None:
    source = "import databacked as db\n\n@db.step\ndef f(x):\n    return x\n"
    mod = write_module(modules, "celery_vanishing", source)
    Path(mod.__file__).unlink()  # the driver has it, the worker cannot import it
    with get_executor(rabbit["broker"], **_options(rabbit)) as ex:
        with pytest.raises(ExecutorError, match=rf"cannot import the module '{mod.__name__}'"):
            ex.submit(mod.f, 1).result(timeout=TIMEOUT)
        assert ex.submit(add, 1, 2).result(timeout=TIMEOUT) == 3


@pytest.mark.parametrize(
    ("payload", "why"),
    [("not base64 at all!", "not base64"), (base64.b64encode(b"x" * 600).decode(), "not a tar")],
)
def test_worker_refuses_a_malformed_call(payload: str, why: str, rabbit: dict[str, str]) -> None:
    with get_executor(rabbit["broker"], **_options(rabbit)) as ex:
        answer = ex.app.send_task(TASK, args=[payload], queue=rabbit["queue"])
        result = answer.get(timeout=TIMEOUT)
        answer.forget()
    assert set(result) == {"refused"}
    assert why in result["refused"]


def _hand_made(function: str, items: list[Any], members: dict[str, bytes] | None = None) -> str:
    """A call as someone who can publish to the broker would write it: no driver involved."""
    from databacked.executors.celery import _pack
    from databacked.executors.wire import CALL, PROTOCOL, write_tar

    call = {"protocol": PROTOCOL, "function": function, "items": items, "allow_pickle": True}
    return _pack(write_tar(CALL, call, members or {}))


def test_worker_refuses_os_system_and_pickle_and_keeps_serving(
    tmp_path: Path, rabbit: dict[str, str]
) -> None:
    import cloudpickle

    canary = tmp_path / "canary"
    bomb = {"params/0.pkl": cloudpickle.dumps(_Touch(str(canary)))}
    messages = {
        "may not import 'os'": _hand_made("os:system", [[f"touch {canary}"]]),
        "not a databacked step": _hand_made("databacked.worker:os.system", [[f"touch {canary}"]]),
        "--allow-pickle": _hand_made(
            "databacked.testing.executor_contract:echo",
            [[{"$type": "pickle", "member": "params/0.pkl"}]],
            bomb,
        ),
    }
    with get_executor(rabbit["broker"], **_options(rabbit)) as ex:
        for why, payload in messages.items():
            answer = ex.app.send_task(TASK, args=[payload], queue=rabbit["queue"])
            result = answer.get(timeout=TIMEOUT)
            answer.forget()
            assert set(result) == {"refused"}
            assert why in result["refused"]
        assert ex.submit(add, 1, 2).result(timeout=TIMEOUT) == 3  # still serving
    assert not canary.exists()


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (Path(self.path),))


def test_worker_with_a_key_refuses_unsigned_calls(tmp_path: Path, redis_url: str) -> None:
    key = "s" * 32
    queue = f"databacked-test-key-{uuid.uuid4().hex[:12]}"
    with celery_worker(redis_url, queue, tmp_path / "w.log", key=key, concurrency=1):
        with get_executor(redis_url, queue=queue, key=key) as ex:
            assert ex.submit(add, 20, 22).result(timeout=TIMEOUT) == 42
        for other, why in ((None, r"refused the call.*not signed"),
                           ("w" * 32, r"refused the call.*wrong signature")):  # fmt: skip
            with (
                get_executor(redis_url, queue=queue, key=other) as ex,
                pytest.raises(ExecutorError, match=why),
            ):
                ex.submit(add, 1, 1).result(timeout=TIMEOUT)
