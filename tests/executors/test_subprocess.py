"""The subprocess executor: the contract, dead workers, missing modules, and a pipeline run
through ``python -m databacked.worker`` giving the same bytes as inline."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import databacked as db
from databacked.errors import ExecutorError
from databacked.executors import Executor, get_executor
from databacked.executors.subprocess import SubprocessExecutor
from databacked.executors.wire import OUTCOME, read_document, read_tar
from databacked.store import Store
from databacked.testing.executor_contract import TIMEOUT, ExecutorContract, add


class TestSubprocess(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Iterator[Executor]:
        with get_executor("subprocess", workers=4) as ex:
            yield ex

    # Without pickle, functions travel by reference only: what a worker cannot import is a
    # clear error on the future, and the run goes on.
    def test_closure_and_lambda_run(self, executor: Executor) -> None:
        future = executor.submit(lambda s: s.upper(), "dna")
        with pytest.raises(ExecutorError, match=r"subprocess executor.*lambda"):
            future.result(timeout=TIMEOUT)
        assert executor.submit(add, 1, 2).result(timeout=TIMEOUT) == 3

    def test_many_small_tasks(self, executor: Executor) -> None:
        # Every submit is one interpreter start by design (~0.3 s of CPU), so 200 of them
        # would dominate the suite; many small calls travel as one batch, tested in full.
        futures = [executor.submit(add, i, 1) for i in range(24)]
        assert [f.result(timeout=TIMEOUT) for f in futures] == list(range(1, 25))
        big = executor.submit_batch(add, [(i, i) for i in range(2000)]).result(timeout=TIMEOUT)
        assert big == [2 * i for i in range(2000)]

    def test_function_defined_in_main_runs(self, executor: Executor) -> None:
        namespace: dict[str, Any] = {"__name__": "__main__"}
        exec("def triple(x):\n    return 3 * x\n", namespace)
        with pytest.raises(ExecutorError, match=r"__main__.*importable module"):
            executor.submit(namespace["triple"], 5).result(timeout=TIMEOUT)


class TestSubprocessWithPickle:
    """With ``allow_pickle=True`` the notebook cases of the contract run too."""

    @pytest.fixture
    def executor(self) -> Iterator[Executor]:
        with SubprocessExecutor(workers=2, allow_pickle=True) as ex:
            yield ex

    test_closure_and_lambda_run = ExecutorContract.test_closure_and_lambda_run
    test_function_defined_in_main_runs = ExecutorContract.test_function_defined_in_main_runs


def test_worker_killed_by_a_signal_fails_its_call(write_module: Callable[..., ModuleType]) -> None:
    mod = write_module(
        "killer",
        """
        import os, signal
        import databacked as db

        @db.step
        def die():
            os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    with SubprocessExecutor(workers=2) as ex:
        dead = ex.submit(mod.die)
        alive = ex.submit(add, 2, 2)
        with pytest.raises(ExecutorError, match=r"subprocess executor.*killed by SIGKILL"):
            dead.result(timeout=TIMEOUT)
        assert alive.result(timeout=TIMEOUT) == 4


def test_missing_module_in_worker_names_module_and_executor(
    write_module: Callable[..., ModuleType],
) -> None:
    source = "import databacked as db\n\n@db.step\ndef f(x):\n    return x\n"
    mod = write_module("vanishing", source)
    Path(mod.__file__).unlink()  # the driver has it, the worker cannot import it
    with SubprocessExecutor(workers=1) as ex:
        with pytest.raises(ExecutorError, match=rf"subprocess executor.*'{mod.__name__}'"):
            ex.submit(mod.f, 1).result(timeout=TIMEOUT)
        results = ex.submit_batch(mod.f, [(1,), (2,)]).result(timeout=TIMEOUT)
        assert all(isinstance(r.exception, ExecutorError) for r in results)


def test_shell_pipeline_drives_a_worker(tmp_path: Path) -> None:
    """``tar -cf - call.json | python -m databacked.worker | tar -tvf -``, as documented."""
    call = SubprocessExecutor(workers=1).encode(add, [[2, 3]])
    with tarfile.open(fileobj=io.BytesIO(call)) as tar:
        tar.extractall(tmp_path, filter="data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.json"]
    shell = f"tar -cf - call.json | {sys.executable} -m databacked.worker"
    proc = subprocess.run(shell, shell=True, cwd=tmp_path, capture_output=True, check=True)
    files = read_tar(io.BytesIO(proc.stdout))
    assert sorted(files) == ["logs/stderr.txt", "logs/stdout.txt", OUTCOME]
    outcome = read_document(files, OUTCOME)
    assert outcome["results"] == [{"ok": True, "value": 5}]


def test_worker_output_goes_to_logs_not_into_the_tar(
    write_module: Callable[..., ModuleType],
) -> None:
    mod = write_module(
        "noisy",
        """
        import os, sys
        import databacked as db

        @db.step
        def shout(n):
            print("hello from the step")
            os.write(1, b"raw bytes on fd 1\\n")
            print("to stderr", file=sys.stderr)
            return n * 2
        """,
    )
    with SubprocessExecutor(workers=1) as ex:
        assert ex.submit(mod.shout, 21).result(timeout=TIMEOUT) == 42


PIPELINE = """
import numpy as np
import pandas as pd
import databacked as db


@db.step(target="images/{i}.npy")
def make(i: int) -> np.ndarray:
    return np.arange(12, dtype=np.float32).reshape(3, 4) * i


@db.step(target="tables/{i}.csv")
def measure(i: int, image: np.ndarray) -> pd.DataFrame:
    print("measuring", i)
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


def test_pipeline_on_subprocess_matches_inline(
    tmp_path: Path, write_module: Callable[..., ModuleType]
) -> None:
    mod = write_module("small_pipeline", PIPELINE)
    runs = {}
    for name in ("inline", "subprocess"):
        result = db.run(
            mod.small,
            3,
            store=str(tmp_path / name),
            catalog=f"sqlite:///{tmp_path / name}.db",
            executor=name,
            workers=2,
        )
        assert result.ok, result.summary()
        assert result.counts()["ran"] == 7
        runs[name] = _hashes(tmp_path / name)
    assert len(runs["inline"]) == 7
    assert runs["subprocess"] == runs["inline"]
    again = db.run(
        mod.small,
        3,
        store=str(tmp_path / "subprocess"),
        catalog=f"sqlite:///{tmp_path / 'subprocess'}.db",
        executor="subprocess",
    )
    assert again.counts()["cached"] == 7


def test_pipeline_step_module_missing_in_worker_fails_clearly(
    tmp_path: Path, write_module: Callable[..., ModuleType]
) -> None:
    mod = write_module("gone_pipeline", PIPELINE)
    for step in (mod.make, mod.measure, mod.summarize):
        assert step.fingerprint  # from the source, while the driver can still read it
    Path(mod.__file__).unlink()
    result = db.run(
        mod.small,
        1,
        store=str(tmp_path / "data"),
        catalog=f"sqlite:///{tmp_path / 'c.db'}",
        executor="subprocess",
        workers=1,
    )
    assert not result.ok
    calls = result.calls
    failed = calls[calls["status"] == "failed"]
    assert len(failed) == 1
    error = failed["error"].iloc[0]
    assert "subprocess executor" in error
    assert mod.__name__ in error
    assert set(calls["status"]) == {"failed", "skipped"}
    assert not (tmp_path / "data" / "images").exists()


def test_pipeline_on_s3_workers_write_with_their_own_credentials(
    tmp_path: Path, write_module: Callable[..., ModuleType], s3_bucket: str, s3_endpoint: str
) -> None:
    mod = write_module("s3_pipeline", PIPELINE)
    # The driver's options carry credentials; the wire drops them (test_wire checks that) and
    # the worker writes with its own, from the environment the s3 fixture set.
    options = {"key": "testing", "secret": "testing", "endpoint_url": s3_endpoint}
    store = Store(f"{s3_bucket}/project", storage_options=options)
    result = db.run(
        mod.small,
        2,
        store=store,
        catalog=f"sqlite:///{tmp_path / 'c.db'}",
        executor="subprocess",
        workers=2,
    )
    assert result.ok, result.summary()
    inline = db.run(
        mod.small,
        2,
        store=str(tmp_path / "local"),
        catalog=f"sqlite:///{tmp_path / 'l.db'}",
        executor="inline",
    )
    assert inline.ok
    on_s3 = {
        info.path: store.hash(info.path)
        for info in store.list()
        if not info.path.startswith(".databacked")
    }
    assert on_s3 == _hashes(tmp_path / "local")


BATCHED = """
import numpy as np
import databacked as db


@db.step(persist=False, batch=3)
def ramp(i: int) -> np.ndarray:
    return np.full((2, 2), i, dtype=np.int16)


@db.step(target="out/{i}.npy", batch=3)
def double(i: int, a: np.ndarray) -> np.ndarray:
    if i == 4:
        raise ValueError("bad field 4")
    return a * 2


@db.pipeline
def batched(n: int):
    ids = list(range(n))
    return double.map(i=ids, a=ramp.map(i=ids))
"""


def test_batches_and_in_memory_values_cross_the_wire(
    tmp_path: Path, write_module: Callable[..., ModuleType]
) -> None:
    mod = write_module("batched", BATCHED)
    result = db.run(
        mod.batched,
        6,
        store=str(tmp_path / "data"),
        catalog=f"sqlite:///{tmp_path / 'c.db'}",
        executor="subprocess",
        workers=2,
    )
    calls = result.calls
    failed = calls[calls["status"] == "failed"]
    assert list(failed["step"]) == ["double"]
    assert "bad field 4" in failed["error"].iloc[0]
    assert (calls["status"] == "ran").sum() == 11
    for i in (0, 1, 2, 3, 5):
        saved = db.load(str(tmp_path / "data" / "out" / f"{i}.npy"))
        assert saved.tolist() == [[2 * i, 2 * i], [2 * i, 2 * i]]
    assert not (tmp_path / "data" / "out" / "4.npy").exists()


def test_missing_interpreter_is_a_clear_error(tmp_path: Path) -> None:
    ex = SubprocessExecutor(workers=1, python=str(tmp_path / "no-python"))
    with ex, pytest.raises(ExecutorError, match=r"cannot start.*no-python"):
        ex.submit(add, 1, 2).result(timeout=TIMEOUT)
