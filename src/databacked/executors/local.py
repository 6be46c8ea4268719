"""Executors on this machine: ``inline``, ``threads`` and ``processes``.

``inline`` runs each call at submit time in the caller, so a debugger or a notebook sees
the step's frames. ``threads`` suits I/O-bound steps. ``processes`` is a loky pool: loky
serialises with cloudpickle, so functions defined in a notebook or ``__main__`` run in
the workers, and a worker killed by the operating system fails its futures instead of
hanging the run; the next submission gets a fresh pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import (
    BrokenExecutor,
    Future,
    InvalidStateError,
    ThreadPoolExecutor,
    wait,
)
from typing import Any

from databacked.config import default_workers
from databacked.errors import ExecutorError
from databacked.executors.base import BaseExecutor, mark_disposable


def _positive(workers: int | None, name: str) -> int:
    if workers is None:
        return default_workers()
    if int(workers) < 1:
        raise ExecutorError(
            f"The {name} executor needs at least one worker, got workers={workers}; "
            "pass a positive number or leave it unset for one per core."
        )
    return int(workers)


class InlineExecutor(BaseExecutor):
    """Runs every call at once, in the caller's thread; the future is already done.

    >>> InlineExecutor().submit(sum, [1, 2]).result()
    3
    """

    name = "inline"

    def __init__(self, workers: int | None = None) -> None:
        super().__init__()
        # Inline is sequential whatever is asked: one call at a time in the caller.
        self.max_workers = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        self._check_open()
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        try:
            result = fn(*args)
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future


class ThreadExecutor(BaseExecutor):
    """A thread pool in this process, for steps that mostly wait on I/O."""

    name = "threads"

    def __init__(self, workers: int | None = None) -> None:
        super().__init__()
        self.max_workers = _positive(workers, self.name)
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="databacked")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        self._check_open()
        return self._pool.submit(fn, *args)

    def terminate(self) -> None:
        """Drop queued calls and stop waiting for running ones (a thread cannot be killed)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _shutdown(self) -> None:
        self._pool.shutdown(wait=True)


class ProcessExecutor(BaseExecutor):
    """A loky process pool; a dead worker is an :class:`ExecutorError` on its futures."""

    name = "processes"

    def __init__(self, workers: int | None = None, *, idle_timeout: float = 300.0) -> None:
        super().__init__()
        self.max_workers = _positive(workers, self.name)
        self._idle_timeout = idle_timeout
        self._pool: Any = None
        self._lock = threading.Lock()
        self._pending: set[Future[Any]] = set()

    def _fresh_pool(self, broken: Any = None) -> Any:
        """The live pool, replacing ``broken`` (or a pool loky marked broken) by a new one."""
        import loky

        with self._lock:
            pool = self._pool
            if pool is not None and (pool is broken or _is_broken(pool)):
                # Workers of a broken pool are already gone or dying; do not wait for them.
                pool.shutdown(wait=False, kill_workers=True)
                pool = None
            if pool is None:
                pool = loky.ProcessPoolExecutor(
                    max_workers=self.max_workers,
                    timeout=self._idle_timeout,
                    initializer=mark_disposable,  # a call stuck past its timeout may end one
                )
                self._pool = pool
            return pool

    def warm(self, modules: Sequence[str] = (), functions: Sequence[Any] = ()) -> None:
        """Spawn the workers now (loky starts them all on the first task), each importing
        ``modules`` and unpickling ``functions``; the driver does not wait for it."""
        self._check_open()
        pool = self._fresh_pool()
        for _ in range(self.max_workers):
            pool.submit(import_modules, tuple(modules), tuple(functions))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        self._check_open()
        pool = self._fresh_pool()
        try:
            inner = pool.submit(fn, *args)
        except (BrokenExecutor, RuntimeError):
            # The pool broke between the check and the submission (a worker just died).
            inner = self._fresh_pool(broken=pool).submit(fn, *args)
        with self._lock:
            self._pending.add(inner)
        inner.add_done_callback(self._settled)
        return _relay(inner, self.name)

    def _settled(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def reap(self) -> None:
        """After a worker died: the broken pool's other workers are killed and waited for,
        so whatever they finished is in the journal before the driver looks (loky ends
        them only some time later, and meanwhile they go on with their batches)."""
        with self._lock:
            pool = self._pool
            if pool is None or not _is_broken(pool):
                return
            self._pool = None
        pool.shutdown(wait=True, kill_workers=True)

    def terminate(self) -> None:
        """Kill the workers now (a cancelled run past its grace period); the next submission
        gets a fresh pool."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, kill_workers=True)

    def _shutdown(self) -> None:
        with self._lock:
            pending = list(self._pending)
        wait(pending)  # what was submitted finishes, as with concurrent.futures
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            # The workers are idle and hold nothing the driver still needs: ending them at
            # once spares each one's interpreter shutdown (~0.1 s with numpy and pandas
            # loaded), which the driver would otherwise wait for.
            pool.shutdown(wait=True, kill_workers=True)


def import_modules(modules: Sequence[str], functions: Sequence[Any] = ()) -> None:
    """A warming task: import what the calls to come will need (``functions`` did so as
    they were unpickled)."""
    import importlib

    for name in modules:
        importlib.import_module(name)


def _is_broken(pool: Any) -> bool:
    flags = getattr(pool, "_flags", None)
    return bool(getattr(flags, "broken", False) or getattr(flags, "shutdown", False))


def _relay(inner: Future[Any], name: str) -> Future[Any]:
    """A future mirroring ``inner``, with a broken pool turned into :class:`ExecutorError`."""
    outer: Future[Any] = Future()

    def _copy(done: Future[Any]) -> None:
        try:
            if done.cancelled():
                outer.cancel()
            elif isinstance(done.exception(), BrokenExecutor):
                error = ExecutorError(
                    f"A worker process of the {name} executor died while running this call "
                    "(killed by the operating system, often for lack of memory); the call can "
                    "be run again, with fewer workers if memory is short."
                )
                error.__cause__ = done.exception()
                outer.set_exception(error)
            elif done.exception() is not None:
                outer.set_exception(done.exception())
            else:
                outer.set_result(done.result())
        except InvalidStateError:
            pass  # the caller cancelled the outer future meanwhile; nothing to deliver

    def _cancel_inner(done: Future[Any]) -> None:
        if done.cancelled():
            inner.cancel()

    outer.add_done_callback(_cancel_inner)
    inner.add_done_callback(_copy)
    return outer


__all__ = ["InlineExecutor", "ProcessExecutor", "ThreadExecutor"]
