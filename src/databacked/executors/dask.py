"""The ``dask`` executor: calls run as tasks of a ``distributed`` cluster.

Three ways to get a cluster, in this order of precedence:

- ``client=`` or ``cluster=``: an existing ``distributed.Client`` or cluster object (a
  notebook's); databacked uses it and never closes it.
- ``address="tcp://host:8786"`` (what ``executor="dask://host:8786"`` becomes) or
  ``scheduler_file=``: connect to a running scheduler.
- ``cluster_class="dask_jobqueue.SLURMCluster"`` with ``cluster_kwargs`` and ``scale``: any
  cluster class (jobqueue, dask_kubernetes...) imported by path, started and closed by us.
- nothing: a ``LocalCluster`` of worker processes on 127.0.0.1, dashboard off; each worker
  offers its threads and its share of the memory as the resources ``cpus`` and ``memory``.

A worker that dies mid-task is the scheduler's business: it reschedules the task on another
worker up to ``distributed.scheduler.allowed-failures`` times, so the run completes; past
that, the call fails with :class:`ExecutorError` naming the executor. Dask's own ``retries=``
is deliberately not used: it would also re-run a step that raised, which is the engine's
decision (the step's ``retries=``), not the executor's.

Timeouts: dask runs tasks in worker threads, which no timer can interrupt, so a task whose
calls have timeouts runs in a child process of its worker (``executors/child.py``), where each
call is stopped at its timeout as on ``processes``; the child costs a Python start-up per task.

Resources: a step's ``resources={"gpus": 1}`` become dask worker resources of the task, under
the name the workers give them (``dask worker --resources "GPU=1"``, ``LocalCluster(resources=
{"GPU": 1})`` or ``DaskExecutor(resources={"gpus": 1})``; ``gpu``, ``GPU`` and ``gpus`` are the
same kind). The scheduler then runs at once only what a worker's resources hold, and a step
asking for more than every worker offers is refused before anything runs.

Dependent data staying on the workers: every future this executor returns carries its
``distributed.Future`` as ``.dask_future``. Passing such a future (or a ``distributed.Future``)
among the arguments of :meth:`DaskExecutor.submit` hands the upstream result to the task on
the cluster, without a round trip through the driver.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any

from databacked.errors import ExecutorError, PipelineError
from databacked.executors.base import BaseExecutor, Placement, resource_kind, run_batch
from databacked.executors.child import run_in_child

_INSTALL_HINT = "pip install 'databacked[dask]'"
log = logging.getLogger("databacked.executors.dask")


def _distributed() -> Any:
    """The ``distributed`` package, or an :class:`ExecutorError` saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ExecutorError(
            f"The dask executor needs the package 'distributed', which is not installed: "
            f"{_INSTALL_HINT}."
        ) from exc
    return distributed


def import_cluster_class(path: str) -> type[Any]:
    """The class named by ``"package.module.Class"`` (or ``"package.module:Class"``).

    >>> import_cluster_class("distributed.LocalCluster").__name__
    'LocalCluster'
    """
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    if not module_name or not attribute:
        raise ExecutorError(
            f"The dask cluster_class {path!r} is not an import path; write it as "
            "'package.module.ClassName', e.g. 'dask_jobqueue.SLURMCluster'."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExecutorError(
            f"The dask cluster_class {path!r} cannot be imported ({exc}); install the package "
            "that provides it (e.g. pip install dask-jobqueue) or fix the name."
        ) from exc
    cluster_class = getattr(module, attribute, None)
    if not isinstance(cluster_class, type):
        raise ExecutorError(
            f"The dask cluster_class {path!r} names no class in {module_name}; check the "
            "spelling of the class name."
        )
    return cluster_class


def start_local_cluster(
    n_workers: int,
    threads_per_worker: int = 1,
    *,
    allowed_failures: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> Any:
    """A ``LocalCluster`` of ``n_workers`` worker processes, on loopback, logs quiet.

    Each worker offers its threads as ``cpus`` and its share of the memory as ``memory``
    (what dask gives it), plus ``resources`` (e.g. ``{"gpus": 1}``, which may also set those).
    """
    distributed = _distributed()
    import dask
    from distributed.system import MEMORY_LIMIT

    given = {resource_kind(name) for name in resources or {}}
    shares = {"cpus": float(threads_per_worker), "memory": float(MEMORY_LIMIT) / n_workers}
    offered = {k: v for k, v in shares.items() if k not in given} | dict(resources or {})

    settings: dict[str, Any] = {}
    if allowed_failures is not None:
        # Read when the scheduler starts; LocalCluster runs its scheduler in this process.
        settings["distributed.scheduler.allowed-failures"] = int(allowed_failures)
    try:
        with dask.config.set(settings):
            return distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                host="127.0.0.1",
                # Scheduler and workers always serve HTTP (health, metrics); without an
                # address they would listen on every interface.
                dashboard_address=None,
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                worker_dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR,
                resources=offered,
            )
    except Exception as exc:
        raise ExecutorError(
            f"The dask executor could not start a local cluster of {n_workers} workers: "
            f"{exc}; try fewer workers or check that 127.0.0.1 ports can be bound."
        ) from exc


class DaskExecutor(BaseExecutor):
    """Calls as tasks of a Dask cluster, bridged to ``concurrent.futures`` futures."""

    name = "dask"

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        scheduler_file: str | None = None,
        cluster_class: str | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        scale: int | None = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        allowed_failures: int | None = None,
        timeout: float = 10.0,
        client: Any = None,
        cluster: Any = None,
        resources: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        distributed = _distributed()
        self._owned_cluster: Any = None
        self._owns_client = client is None
        self._pending: dict[str, tuple[Any, Future[Any]]] = {}
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}
        """Resource kind -> the name the cluster's workers offer it under."""
        self._fits: set[frozenset[tuple[str, float]]] = set()
        """Requests a worker was found to hold (one look at the cluster per request)."""
        if client is not None:
            self.client = client
        elif cluster is not None:
            self.client = self._connect(distributed, cluster, timeout=timeout)
        elif address is not None or scheduler_file is not None:
            self.client = self._connect(
                distributed, address, scheduler_file=scheduler_file, timeout=timeout
            )
        else:
            if cluster_class is not None:
                # An explicit worker count (``--workers``) also says how far to scale.
                self._owned_cluster = self._start_cluster(
                    cluster_class, cluster_kwargs, scale or workers
                )
            else:
                count = workers if workers is not None else n_workers
                if count is not None and int(count) < 1:
                    raise ExecutorError(
                        f"The dask executor needs at least one worker, got {count}; pass a "
                        "positive number or leave it unset for one per core."
                    )
                if count is None:
                    from databacked.config import default_workers

                    count = default_workers()
                self._owned_cluster = start_local_cluster(
                    int(count),
                    threads_per_worker,
                    allowed_failures=allowed_failures,
                    resources=resources,
                )
            try:
                self.client = self._connect(distributed, self._owned_cluster, timeout=timeout)
            except ExecutorError:
                self._owned_cluster.close()
                raise
        self._completed = distributed.as_completed(loop=self.client.loop)
        self._wake = threading.Event()
        self._courier = threading.Thread(
            target=self._deliver_loop, name="databacked-dask-results", daemon=True
        )
        self._courier.start()
        self.address: str = str(self.client.scheduler.address)
        self.max_workers = self._count_threads(scale or workers, threads_per_worker)

    @property
    def cluster(self) -> Any:
        """The cluster object behind the client, if there is one in this process."""
        return self._owned_cluster if self._owned_cluster is not None else self.client.cluster

    def _start_cluster(self, path: str, kwargs: dict[str, Any] | None, scale: int | None) -> Any:
        cluster_class = import_cluster_class(path)
        try:
            cluster = cluster_class(**(kwargs or {}))
        except Exception as exc:
            raise ExecutorError(
                f"The dask executor could not start {path} with {sorted(kwargs or {})}: {exc}; "
                "check cluster_kwargs against that class's documentation."
            ) from exc
        if scale:
            try:
                cluster.scale(int(scale))
            except Exception as exc:
                cluster.close()
                raise ExecutorError(
                    f"The dask executor could not scale {path} to {scale} workers: {exc}; "
                    "check that the batch system accepts the generated job script."
                ) from exc
        return cluster

    @staticmethod
    def _connect(
        distributed: Any, target: Any, *, scheduler_file: str | None = None, timeout: float
    ) -> Any:
        if scheduler_file is not None:
            _wait_for_file(scheduler_file, timeout)
        try:
            return distributed.Client(
                target, scheduler_file=scheduler_file, timeout=timeout, set_as_default=False
            )
        except Exception as exc:
            where = f"named in {scheduler_file}" if scheduler_file else f"at {target}"
            if not isinstance(target, str | None):
                where = f"of {type(target).__name__}"
            raise ExecutorError(
                f"Cannot reach the dask scheduler {where} within {timeout:g} s: {exc}. "
                "Check that `dask scheduler` runs there and that this machine can reach it."
            ) from exc

    def _count_threads(self, scale: int | None, threads_per_worker: int) -> int:
        # Workers of a batch-system cluster may still be queued; count what was asked for.
        try:
            running = sum(self.client.nthreads().values())
        except Exception:
            running = 0
        return max(1, running, int(scale or 0) * threads_per_worker)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` as one task; each submission gets its own key."""
        return self._submit(fn, args)

    def place(self, placement: Placement, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on a worker offering ``placement.resources``; in a child process
        of the worker when a call has a timeout (see the module doc)."""
        resources = self._worker_resources(placement.resources) if placement.resources else None
        if placement.timed:
            return self._submit(run_in_child, (placement, fn, *args), resources, fn)
        return self._submit(fn, args, resources)

    def check_resources(self, owner: str, needs: Mapping[str, float]) -> None:
        """Refuse, before anything runs, a request that no worker of the cluster can hold
        (dask would otherwise keep the task waiting for ever)."""
        request = frozenset(needs.items())
        if request in self._fits:
            return
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        if not workers:
            log.warning(
                "%s asks for %s, but the dask cluster at %s has no workers yet to check that "
                "against; its calls wait for a worker offering it.",
                owner,
                _show(needs),
                self.address,
            )
            self._names.update({kind: kind for kind in needs if kind not in self._names})
            return
        offers = [_offered(info.get("resources") or {}) for info in workers.values()]
        for offer in offers:
            if all(kind in offer and offer[kind][1] >= amount for kind, amount in needs.items()):
                self._names.update({kind: offer[kind][0] for kind in needs})
                self._fits.add(request)
                return
        given = sorted(
            {f"{name}={_amount(resource_kind(name), n)}" for o in offers for name, n in o.values()}
        )
        raise PipelineError(
            f"{owner} asks for {_show(needs)} but no worker of the dask cluster at "
            f"{self.address} offers that much (they offer {', '.join(given) or 'no resources'}); "
            'start workers with --resources "GPU=1" (dask worker), LocalCluster(resources=...) '
            "or DaskExecutor(resources=...), or lower the request."
        )

    def _worker_resources(self, needs: Mapping[str, float]) -> dict[str, float]:
        if any(kind not in self._names for kind in needs):
            self.check_resources("A call", needs)
        return {self._names[kind]: amount for kind, amount in needs.items()}

    def _submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        resources: dict[str, float] | None = None,
        named: Callable[..., Any] | None = None,
    ) -> Future[Any]:
        self._check_open()
        named = named or fn
        label = getattr(named, "__name__", "call")
        if named is run_batch and args:
            label = f"batch-{getattr(args[0], '__name__', 'call')}"
        # Our own unique key: identical calls (a retried call, a no-op step) must each run,
        # never be merged into one task by dask's content-based keys.
        key = f"databacked-{label}-{uuid.uuid4().hex}"
        outer: Future[Any] = Future()
        outer.set_running_or_notify_cancel()
        try:
            dask_future = self.client.submit(
                fn, *[_unwrap(arg) for arg in args], key=key, pure=False, resources=resources
            )
        except Exception as exc:
            # Like a process pool: the call fails, the run goes on with the other calls.
            outer.set_exception(self._submit_error(label, exc))
            return outer
        outer.dask_future = dask_future  # type: ignore[attr-defined]  # see the module doc
        with self._lock:
            # Dask forgets a task whose last future is garbage; hold it until it is done.
            self._pending[key] = (dask_future, outer)
        self._completed.add(dask_future)
        self._wake.set()
        return outer

    def _submit_error(self, label: str, exc: Exception) -> ExecutorError:
        root: BaseException = exc
        while root.__cause__ is not None or root.__context__ is not None:
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
        if isinstance(exc, TypeError) and "serializ" in str(exc):
            error = ExecutorError(
                f"The dask executor could not serialise {label} or its arguments for the "
                f"workers ({root}); pass picklable values, or create unpicklable objects "
                "(locks, open files, connections) inside the step."
            )
        else:
            error = ExecutorError(
                f"The dask executor could not submit {label} to the scheduler at "
                f"{self.address}: {exc}; check that the scheduler is still running."
            )
        error.__cause__ = exc
        return error

    def submit_batch(self, fn: Callable[..., Any], batch: Sequence[tuple[Any, ...]]) -> Future[Any]:
        """One dask task running ``fn`` over ``batch``; per-item failures via ``run_batch``."""
        return self.submit(run_batch, fn, list(batch))

    def _deliver_loop(self) -> None:
        """Hand results over in batches: one gather per batch of finished tasks, instead of
        a round trip per call on dask's single callback thread."""
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            for batch in self._completed.batches():
                self._deliver(batch)
                if self._closed:
                    return

    def _deliver(self, batch: list[Any]) -> None:
        with self._lock:
            outers = [(done, self._pending.pop(done.key, (None, None))[1]) for done in batch]
        finished = [done for done, outer in outers if outer and done.status == "finished"]
        values: dict[Any, Any] = {}
        if finished:
            with contextlib.suppress(Exception):  # then fetched one by one, each with its error
                values = dict(
                    zip([f.key for f in finished], self.client.gather(finished), strict=True)
                )
        for done, outer in outers:
            if outer is None:
                continue  # settled by close()
            try:
                if done.key in values or done.status == "finished":
                    value = values[done.key] if done.key in values else done.result()
                    outer.set_result(value)
                    continue
                error = done.exception() if done.status == "error" else None
            except InvalidStateError:
                continue  # settled by close() meanwhile
            except Exception as exc:  # fetching the result failed (worker or scheduler gone)
                error = exc
            with contextlib.suppress(InvalidStateError):
                outer.set_exception(self._translate(error))

    def _translate(self, error: BaseException | None) -> BaseException:
        from distributed.scheduler import KilledWorker

        if isinstance(error, KilledWorker):
            wrapped = ExecutorError(
                f"The workers of the dask executor (scheduler {self.address}) died while "
                "running this call, more often than the scheduler's allowed-failures "
                "allows; the call may use too much memory or crash its process."
            )
        elif error is None or type(error).__module__.startswith(
            ("distributed", "asyncio", "concurrent.futures")
        ):
            wrapped = ExecutorError(
                f"The dask executor lost this call (scheduler {self.address}): "
                f"{error or 'cancelled'}; check that the scheduler and its workers still run."
            )
        else:
            return error  # the step's own exception, with its own type
        wrapped.__cause__ = error
        return wrapped

    def _shutdown(self) -> None:
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        if pending:
            self.client.cancel([dask_future for dask_future, _ in pending])
        for _, outer in pending:
            with contextlib.suppress(InvalidStateError):  # it finished meanwhile
                outer.set_exception(
                    ExecutorError("The dask executor was closed before this call finished.")
                )
        self._wake.set()
        self._courier.join(timeout=10)
        if self._owns_client:
            self.client.close()
        if self._owned_cluster is not None:
            self._owned_cluster.close()

    def __repr__(self) -> str:
        return f"<DaskExecutor {self.address} max_workers={self.max_workers}>"


def _wait_for_file(path: str, timeout: float) -> None:
    """Wait for a scheduler file a starting scheduler will write; ``Client`` would wait forever."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise ExecutorError(
                f"The dask scheduler file {path} does not exist (waited {timeout:g} s); start "
                f"`dask scheduler --scheduler-file {path}` first, or correct the path."
            )
        time.sleep(0.1)


def _offered(resources: Mapping[str, float]) -> dict[str, tuple[str, float]]:
    """Kind -> (name, amount) of what one worker offers."""
    return {resource_kind(name): (name, float(amount)) for name, amount in resources.items()}


def _show(needs: Mapping[str, float]) -> str:
    return ", ".join(f"{kind}={_amount(kind, amount)}" for kind, amount in needs.items())


def _amount(kind: str, amount: float) -> str:
    return f"{amount / 1e9:.3g}GB" if kind == "memory" else f"{amount:g}"


def _unwrap(arg: Any) -> Any:
    """A future returned by this executor becomes its dask future, resolved on the worker."""
    dask_future = getattr(arg, "dask_future", None) if isinstance(arg, Future) else None
    return dask_future if dask_future is not None else arg


__all__ = ["DaskExecutor", "import_cluster_class", "start_local_cluster"]
