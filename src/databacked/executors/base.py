"""The executor protocol: submit a function, get a future back, close.

The scheduler is the same for every executor; an executor only decides *where* a function
runs. Many short calls travel as one task (``submit_batch``) so that 100,000 tiny datums are
not 100,000 jobs; a failure inside a batch fails only its own item.

Executors never import the engine or the catalog: they receive a plain function
(``engine.worker.run_call``) and its arguments. Executors that choose where a task runs (dask,
celery) also take :meth:`BaseExecutor.place`: the task with its :class:`Placement` (timeouts,
resources, queue); executors on this machine need none (the dispatcher holds their resources,
and their workers stop a call at its timeout themselves).
"""

from __future__ import annotations

import traceback as _traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

from databacked.errors import CallTimeout, ExecutorError


@runtime_checkable
class Executor(Protocol):
    """Where calls run: anything with these few members is an executor."""

    name: str
    max_workers: int

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` somewhere; the future holds its result or its exception."""
        ...

    def submit_batch(self, fn: Callable[..., Any], batch: Sequence[tuple[Any, ...]]) -> Future[Any]:
        """Run ``fn`` over every argument tuple in one task; see :func:`run_batch`."""
        ...

    def close(self) -> None:
        """Release workers; calling it again does nothing."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


RESOURCE_KINDS = ("cpus", "memory", "gpus")
_KIND_ALIASES = {"cpu": "cpus", "gpu": "gpus", "mem": "memory"}
BACKSTOP = 60.0
"""Seconds past the sum of its calls' timeouts after which a task's process is killed."""


def resource_kind(name: str) -> str:
    """The kind a resource name means: ``GPU``, ``gpu`` and ``gpus`` are all ``gpus``.

    >>> resource_kind("GPU"), resource_kind("MEMORY"), resource_kind("tpus")
    ('gpus', 'memory', 'tpus')
    """
    lowered = str(name).lower()
    return _KIND_ALIASES.get(lowered, lowered)


@dataclass(frozen=True, slots=True)
class Placement:
    """What one task asks of where it runs, for executors that place tasks (dask, celery)."""

    timeouts: tuple[float | None, ...] = ()
    """Per call of the task, the seconds it may run (None: no limit)."""
    resources: Mapping[str, float] = field(default_factory=dict)
    """What the task holds while it runs, by kind (``cpus``, ``memory`` in bytes, ``gpus``)."""
    queue: str | None = None
    """The queue the task goes to (celery); None: the executor's own."""
    backstop: float = BACKSTOP
    """Seconds past the sum of the timeouts before the task's process is killed."""

    @property
    def timed(self) -> bool:
        """Whether a call of the task has a timeout."""
        return any(self.timeouts)

    @property
    def limit(self) -> float | None:
        """Seconds after which the task's process is killed: every call is then past its
        timeout by far (a call stuck in C code, which the timer cannot interrupt). None when
        a call has no timeout.

        >>> Placement(timeouts=(1.0, 2.0)).limit
        63.0
        """
        if not self.timeouts or any(t is None for t in self.timeouts):
            return None
        return sum(t for t in self.timeouts if t is not None) + self.backstop

    def overrun(self) -> CallTimeout:
        """The error of a task whose process was killed at :attr:`limit`."""
        why = "(stuck outside Python code, in C or a system call), so its process was killed"
        if len(self.timeouts) == 1:
            return CallTimeout(
                f"timeout after {self.timeouts[0]:g} s; the call did not stop at it {why} "
                f"after {self.limit:g} s"
            )
        return CallTimeout(
            f"timeout after {self.limit:g} s for the {len(self.timeouts)} calls of one task; "
            f"they did not stop at their timeouts {why}"
        )


@dataclass(frozen=True, slots=True)
class ItemFailed:
    """Stands in a batch's result list for one item whose call raised."""

    exception: BaseException
    """The exception the item raised, with its original type."""
    traceback: str
    """The formatted traceback, from the process the item ran in."""


def run_batch(fn: Callable[..., Any], batch: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Apply ``fn`` to each argument tuple; an item that raises becomes :class:`ItemFailed`.

    Module-level (not a closure) so process pools pickle it by reference.

    >>> run_batch(lambda x: 1 / x, [(1,), (0,)])[1].exception.__class__.__name__
    'ZeroDivisionError'
    """
    results: list[Any] = []
    for args in batch:
        try:
            results.append(fn(*args))
        except Exception as exc:
            # Catch per item so one bad datum in a chunk cannot fail its neighbours.
            results.append(ItemFailed(exc, _traceback.format_exc()))
    return results


def split_batch(batch_future: Future[Any], size: int) -> list[Future[Any]]:
    """One future per item of a ``submit_batch`` future, as if each had been submitted alone.

    An :class:`ItemFailed` item becomes that item's exception; a failure of the whole task
    (a worker killed, a broken pool) fails every item with the same exception.
    """
    items: list[Future[Any]] = [Future() for _ in range(size)]

    def _fan_out(done: Future[Any]) -> None:
        try:
            results = done.result()
        except (Exception, CancelledError) as exc:
            for item in items:
                item.set_exception(exc)
            return
        for item, value in zip(items, results, strict=True):
            if isinstance(value, ItemFailed):
                item.set_exception(value.exception)
            else:
                item.set_result(value)

    batch_future.add_done_callback(_fan_out)
    return items


_disposable: list[bool] = []


def mark_disposable() -> None:
    """Say that this process is a worker an executor can lose (a loky worker, a
    ``python -m databacked.worker`` process): a call stuck past its timeout may end it."""
    _disposable[:] = [True]


def is_disposable() -> bool:
    """Whether :func:`mark_disposable` was called in this process (never in a driver)."""
    return bool(_disposable)


class BaseExecutor:
    """Shared behaviour: default ``submit_batch``, idempotent ``close``, context manager."""

    name: str = "base"
    max_workers: int = 1

    def __init__(self) -> None:
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        raise NotImplementedError

    def submit_batch(self, fn: Callable[..., Any], batch: Sequence[tuple[Any, ...]]) -> Future[Any]:
        """One task that runs ``fn`` over ``batch``; the future's result is a list with one
        entry per item: the item's return value, or :class:`ItemFailed` if it raised."""
        return self.submit(run_batch, fn, list(batch))

    def warm(self, modules: Sequence[str] = (), functions: Sequence[Any] = ()) -> None:
        """Start workers now, importing ``modules`` and receiving ``functions`` (the steps
        to come: unpickling one imports what it needs), so their start-up overlaps the
        driver's own (opening the catalog, planning); executors without a start-up ignore it."""

    def place(self, placement: Placement, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` where ``placement`` asks; here, wherever :meth:`submit` does."""
        return self.submit(fn, *args)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._shutdown()

    def _shutdown(self) -> None:
        """Release resources; called once by :meth:`close`."""

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ExecutorError(
                f"The {self.name} executor is closed; create a new one to submit more calls."
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} max_workers={self.max_workers}>"


__all__ = [
    "BACKSTOP",
    "RESOURCE_KINDS",
    "BaseExecutor",
    "Executor",
    "ItemFailed",
    "Placement",
    "is_disposable",
    "mark_disposable",
    "resource_kind",
    "run_batch",
    "split_batch",
]
