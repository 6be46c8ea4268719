"""The ``subprocess`` executor: every task is ``python -m databacked.worker`` speaking tar.

The isolation boundary: a step that crashes, leaks memory or is killed takes down only its
own process. Calls travel by the wire protocol (``executors/wire.py``): functions by
``module:qualname`` reference, values in safe formats, never pickle unless the executor was
created with ``allow_pickle=True``. A thread pool keeps ``workers`` subprocesses running.

The driver starts these workers, so they inherit its choices: ``--allow-pickle`` when the
executor allows pickle, ``--import`` for the modules its calls name, and its key
(``DATABACKED_WORKER_KEY``) to sign with. They start in ``cwd`` (default: the driver's
working folder), which is their project folder: spec transforms run when a spec there names
them, so a spec run from elsewhere passes ``cwd=<project>``. The worker still runs only
databacked's entry points, steps and spec transforms (``databacked.worker``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from databacked.errors import ExecutorError, WireError
from databacked.executors.base import BaseExecutor, ItemFailed
from databacked.executors.remote import decode_answer, encode_call
from databacked.executors.signing import KEY_VARIABLE, worker_key
from databacked.executors.wire import (
    Limits,
)


class SubprocessExecutor(BaseExecutor):
    """Runs each task in a fresh ``python -m databacked.worker`` process.

    >>> with SubprocessExecutor(workers=1) as ex:  # doctest: +SKIP
    ...     ex.submit(operator.add, 2, 3).result()
    5
    """

    name = "subprocess"

    def __init__(
        self,
        workers: int | None = None,
        *,
        allow_pickle: bool = False,
        python: str | None = None,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        capture_limit: int = 64 * 1024,
        key: str | bytes | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        if workers is not None and workers < 1:
            raise ExecutorError(f"The subprocess executor needs workers >= 1, not {workers}.")
        self.key = worker_key(key)
        self.cwd = os.fspath(cwd) if cwd is not None else None
        """Where workers start: their project folder (modules and specs); default the driver's."""
        self.max_workers = workers or os.cpu_count() or 1
        self.allow_pickle = allow_pickle
        self.python = python or sys.executable
        self.limits = limits or Limits()
        self.capture_limit = capture_limit
        self._env = dict(env) if env is not None else None
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="databacked-sub")

    # --- submitting ------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` in a worker process; the future holds its result or exception."""
        return self._submit(fn, [tuple(args)], batch=False)

    def submit_batch(self, fn: Callable[..., Any], batch: Sequence[tuple[Any, ...]]) -> Future[Any]:
        """One worker process runs ``fn`` over every argument tuple; see ``base.run_batch``."""
        return self._submit(fn, [tuple(args) for args in batch], batch=True)

    def _submit(
        self, fn: Callable[..., Any], items: list[tuple[Any, ...]], batch: bool
    ) -> Future[Any]:
        self._check_open()
        modules: set[str] = set()
        try:
            payload = self.encode(fn, items, modules)
        except WireError as exc:
            # Like a failed call, not a crash of the run: the scheduler records it.
            failed: Future[Any] = Future()
            failed.set_exception(
                ExecutorError(f"The subprocess executor cannot send this call: {exc}")
            )
            return failed
        return self._pool.submit(self._run, payload, batch, _describe(fn), sorted(modules))

    def encode(
        self,
        fn: Callable[..., Any],
        items: Sequence[Sequence[Any]],
        modules: set[str] | None = None,
    ) -> bytes:
        """The call tar for ``fn`` over ``items``, as ``python -m databacked.worker`` reads it."""
        return encode_call(
            fn,
            items,
            allow_pickle=self.allow_pickle,
            capture_limit=self.capture_limit,
            key=self.key,
            modules=modules,
        )

    def command(self, modules: Sequence[str] = ()) -> list[str]:
        """The worker's command line: the driver's choices of imports and pickle go along."""
        command = [self.python, "-m", "databacked.worker"]
        for module in modules:
            command += ["--import", module]
        if self.allow_pickle:
            command.append("--allow-pickle")
        return command

    # --- running ---------------------------------------------------------------------------

    def _run(self, payload: bytes, batch: bool, what: str, modules: list[str]) -> Any:
        try:
            proc = subprocess.Popen(
                self.command(modules),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._worker_env(),
                cwd=self.cwd,
            )
        except OSError as exc:
            raise ExecutorError(
                f"The subprocess executor cannot start {self.python!r} ({exc}); pass "
                "python= the path of an interpreter with databacked installed."
            ) from exc
        out, err = proc.communicate(payload)
        self._check_exit(proc, err, what)
        results = self.decode(out)
        if not batch:
            if len(results) != 1:
                raise ExecutorError(f"The subprocess worker answered {len(results)} results for 1.")
            ok, value, _ = results[0]
            if not ok:
                raise value
            return value
        return [value if ok else ItemFailed(value, trace) for ok, value, trace in results]

    def decode(self, answer: bytes) -> list[tuple[bool, Any, str]]:
        """(ok, value or exception, worker traceback) per item of an answer tar."""
        return decode_answer(
            answer,
            limits=self.limits,
            allow_pickle=self.allow_pickle,
            executor="subprocess",
            key=self.key,
        )

    def _check_exit(self, proc: subprocess.Popen[bytes], err: bytes, what: str) -> None:
        code = proc.returncode
        if code == 0:
            return
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            raise ExecutorError(
                f"The subprocess executor's worker (pid {proc.pid}) running {what} was killed "
                f"by {name}; check the machine's memory and time limits for this step."
            )
        lines = err.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else "no message"
        if code == 2 and last.startswith("databacked.worker:"):
            reason = last.removeprefix("databacked.worker:").strip().removeprefix("refused:")
            raise ExecutorError(
                f"The subprocess executor's worker refused the call: {reason.strip()}"
            )
        raise ExecutorError(
            f"The subprocess executor's worker running {what} exited with code {code}: {last}; "
            f"check that databacked is installed for {self.python}."
        )

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ if self._env is None else self._env)
        # The worker imports what the driver can: the driver's sys.path goes along.
        paths = [p or os.getcwd() for p in sys.path if isinstance(p, str)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env.setdefault("PYTHONIOENCODING", "utf-8")
        if self.key is not None:
            env[KEY_VARIABLE] = self.key.decode("utf-8", "surrogateescape")
        return env

    def _shutdown(self) -> None:
        # Calls already running finish; queued ones are cancelled.
        self._pool.shutdown(wait=True, cancel_futures=True)


def _describe(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


__all__ = ["SubprocessExecutor"]
