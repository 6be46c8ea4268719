"""How calls reach executors, for every front end: leases, batches, retries, batched writes.

The graph scheduler (``db.run``) and the spec runner (``run_specs``) both hand their calls
to a :class:`Dispatcher` as :class:`Job` s, so there is one implementation of leasing (with
``lease_ttl``, renewal and breaking a dead driver's leases), submission in batches sized
from observed call durations, retries with delay, isolating a call that kills its worker,
adopting calls a killed run had finished (``engine.journal``), and batched catalog writes.
Only a bounded window of tasks is in the executor at once, so even ``inline`` returns to
the driver between calls: leases are renewed and finished calls flushed during long waves.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from databacked.catalog.records import CallRecord
from databacked.crashpoints import crashpoint
from databacked.engine import journal, preflight
from databacked.engine.cancel import RunCancelled, Stop, on_signals
from databacked.engine.events import CallEvent
from databacked.engine.journal import pid_alive
from databacked.engine.resources import Pool
from databacked.engine.worker import CallOutcome, can_time_out, run_batch
from databacked.errors import CallTimeout, ConfigError
from databacked.executors.base import Placement

FLUSH_SECONDS = 1.0
FLUSH_CALLS = 500
"""Finished calls are committed at least this often (seconds) or in batches this large."""
BATCH_SECONDS = 0.5
"""Work per batched task, from observed call durations (about 0.2-1 s)."""
MAX_BATCH = 256
NO_TIMEOUTS = ("threads",)
"""Executors whose calls run in threads that a timer cannot interrupt."""
LOCAL = ("inline", "threads", "processes", "subprocess")
"""Executors whose calls share this machine's resources (dask and celery place their own)."""
log = logging.getLogger("databacked.engine.dispatch")


@dataclass(eq=False)
class Job:
    """One call as the dispatcher sees it, whichever front end planned it."""

    key: str
    name: str
    """Step (or spec pipeline) name: events, batching statistics."""
    task: Any
    """A ``CallSpec``, or a ``(function, task)`` pair run as ``function(task, store)``."""
    state: Any = None
    """The front end's own object for this call."""
    lease: bool = True
    """Whether the key is leased (cached calls); uncached calls are never leased."""
    known: bool = False
    """The catalog already held a completed call with this key when it was planned."""
    retries: int = 0
    retry_delay: float = 0.0
    batch: int | None = None
    """Calls per task, when the step fixes it."""
    timeout: float | None = None
    """Seconds one attempt may run (enforced in the worker, see ``worker.deadline``)."""
    resources: dict[str, float] = field(default_factory=dict)
    """What one attempt holds while it runs (``engine.resources.parse``)."""
    queue: str | None = None
    """The queue its calls go to on executors with queues (celery); None: the default."""
    attempts: int = 0
    started: float = field(default=0.0, repr=False)


@dataclass
class Leased:
    """What leasing found for a list of jobs."""

    mine: list[Job]
    """Jobs this driver now holds and has to compute."""
    busy: list[Job]
    """Jobs whose key a live driver holds."""
    done: dict[str, Any]
    """Key -> completed ``CallRow``: another driver finished it between lookup and lease
    (still leased: the front end checks its outputs, then releases or submits it)."""
    adopted: dict[str, CallOutcome]
    """Key -> outcome an interrupted run had finished (journal), outputs intact."""


class Dispatcher:
    """Leases, submits, retries and records the calls a front end hands it."""

    def __init__(
        self,
        store: Any,
        catalog: Any,
        executor: Any,
        *,
        run_id: str | None = None,
        lease_ttl: float | None = None,
        progress: Callable[[CallEvent], None] | None = None,
        grace: float | None = None,
        resources: Mapping[str, Any] | None = None,
    ) -> None:
        self.store, self.catalog, self.executor = store, catalog, executor
        if lease_ttl is None or grace is None or resources is None:
            from databacked.config import load_settings  # front ends given no settings

            settings = load_settings()
            lease_ttl = float(settings.lease_ttl if lease_ttl is None else lease_ttl)
            grace = float(settings.grace if grace is None else grace)
            resources = dict(settings.resources) if resources is None else resources
        self.stop = Stop(grace)
        self.stop_by: float | None = None
        """Monotonic time the grace period of a stop request ends."""
        self.finished = 0
        self.dropped = 0
        self.capacities = resources
        self._pool: Pool | None = None
        self.holding: dict[Future[Any], dict[str, float]] = {}
        self.asking = 0
        """Queued jobs that ask for resources (most ask for none: no scan then)."""
        self.run_id, self.lease_ttl, self.progress = run_id, lease_ttl, progress
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.journal_id = journal.new_id()
        self.inline = getattr(executor, "name", "") == "inline"
        workers = max(1, int(getattr(executor, "max_workers", 1) or 1))
        self.workers = workers
        self.window = 1 if self.inline else 2 * workers
        self.queue: deque[Job] = deque()
        self.futures: dict[Future[Any], list[Job]] = {}
        self.retry_at: dict[Job, float] = {}
        self.suspects: deque[Job] = deque()
        self.lost: set[int] = set()
        self.records: list[CallRecord] = []
        self.releasable: set[str] = set()
        self.held: set[str] = set()
        self.durations: dict[str, float] = {}
        self.last_flush = self.last_renew = time.monotonic()
        self.preflown = False
        """Whether the store took its one probe write (only once something computes)."""

    def describe(self) -> dict[str, Any]:
        """What the run's provenance records about how calls are dispatched."""
        return {
            "executor": str(getattr(self.executor, "name", self.executor)),
            "workers": self.workers,
            "lease_ttl": self.lease_ttl,
        }

    def check_timeout(self, name: str, seconds: float | None) -> None:
        """Refuse, before anything runs, a timeout this executor cannot enforce."""
        if not seconds:
            return
        kind = str(getattr(self.executor, "name", ""))
        if kind in NO_TIMEOUTS or (kind == "inline" and not can_time_out()):
            raise ConfigError(
                f"'{name}' has a timeout of {seconds:g} s, which the {kind} executor cannot "
                "enforce (a running thread cannot be stopped); use executor 'processes', "
                "'subprocess', 'dask' or 'celery', or remove the timeout."
            )

    def check_resources(self, name: str, needs: Mapping[str, float]) -> None:
        """Refuse, before anything runs, a call asking for more than the capacities hold
        (on a cluster: more than any of its workers offers)."""
        if needs and self.pool is not None:
            self.pool.check(name, needs)
        elif needs and hasattr(self.executor, "check_resources"):
            self.executor.check_resources(name, needs)

    @property
    def pool(self) -> Pool | None:
        """Capacities of this machine's executors; None where the cluster places calls."""
        if self._pool is None and getattr(self.executor, "name", "") in LOCAL:
            self._pool = Pool(self.capacities)
        return self._pool

    # -- leases --------------------------------------------------------------------------------

    def lease(self, jobs: Sequence[Job]) -> Leased:
        """Lease the keys of ``jobs``; a dead driver's leases on this host are broken at once."""
        if jobs and not self.preflown:  # before the store is touched, once something is to run
            preflight.check_store(self.store)
            self.preflown = True
        keys = {j.key for j in jobs if j.lease}
        got = self.catalog.acquire(keys, self.owner, self.lease_ttl) if keys else set()
        if got != keys and self._break_dead_leases(keys - got):
            got = self.catalog.acquire(keys, self.owner, self.lease_ttl)
        self.held |= got
        fresh = [j.key for j in jobs if j.key in got and not j.known]
        done = self.catalog.lookup(fresh, brief=True) if fresh else {}
        adopted = journal.read(self.store, [k for k in got if k not in done], skip=self.journal_id)
        mine, busy = [], []
        for job in jobs:
            if job.lease and job.key not in got:
                busy.append(job)
            elif job.key not in done and job.key not in adopted:
                mine.append(job)
        return Leased(mine, busy, done, adopted)

    def _break_dead_leases(self, keys: Iterable[str]) -> bool:
        """Leases of a driver on this host whose process is gone are released, so a resume
        after ``kill -9`` does not wait for their time-to-live."""
        host = socket.gethostname()
        dead: dict[str, list[str]] = {}
        for key, lease in self.catalog.leases_of_others(list(keys), self.owner).items():
            if lease.host == host and lease.pid and not pid_alive(lease.pid):
                dead.setdefault(lease.owner, []).append(key)
        for owner, owned in dead.items():
            self.catalog.release(owned, owner)
        return bool(dead)

    def release(self, keys: Iterable[str]) -> None:
        keys = set(keys) & self.held
        if keys:
            self.catalog.release(keys, self.owner)
            self.held -= keys

    # -- submission ----------------------------------------------------------------------------

    def submit(self, jobs: Iterable[Job]) -> None:
        """Queue jobs; they enter the executor as the window allows (none once stopping)."""
        if self.stop.requested:
            self.dropped += len(list(jobs))
            return
        for job in jobs:
            job.attempts += 1
            self.asking += bool(job.resources)
            self.queue.append(job)
            self._emit(job, "running")

    def cancel(self) -> list[Job]:
        """Take back every job not yet in the executor (queued, awaiting a retry or a lone
        re-run); what is in the executor goes on. Returns them, for the front end to report."""
        jobs = [*self.queue, *self.retry_at, *self.suspects]
        self.asking = 0
        self.queue.clear()
        self.retry_at.clear()
        self.suspects.clear()
        return jobs

    @property
    def running(self) -> int:
        """Tasks in the executor now."""
        return len(self.futures)

    @property
    def busy(self) -> bool:
        """Calls to wait for (or a stop request still to act on)."""
        return bool(
            self.queue or self.futures or self.retry_at or self.suspects or self.stop.requested
        )

    def _stopping(self) -> None:
        """After a stop request: cancel what waits, give running calls the grace period,
        then end the run (what finished is committed by :meth:`close`)."""
        if self.stop_by is None:
            self.dropped += len(self.cancel())
            self.stop_by = time.monotonic() + self.stop.grace
        if self.futures and time.monotonic() < self.stop_by:
            return
        running = sum(len(chunk) for chunk in self.futures.values())
        if running:
            self.abort()
        raise RunCancelled(self.stop.signum or signal.SIGINT, self.finished, self.dropped + running)

    def signals(self) -> Any:
        """While the run goes on, SIGINT/SIGTERM ask it to stop (see ``engine.cancel``)."""
        return on_signals(self.stop)

    def abort(self) -> None:
        """Stop the executor's workers now (running calls are lost, their leases released)."""
        self.futures.clear()
        terminate = getattr(self.executor, "terminate", None)
        if terminate is not None:
            terminate()

    def _pump(self) -> None:
        if self.suspects and not self.futures:
            # a worker died under a batch: its calls run alone, one at a time, so only the
            # call that kills its worker ends up failed
            self._send([self.suspects.popleft()])
            return
        while self.queue and len(self.futures) < self.window and not self.suspects:
            chunk = self._next_chunk()
            if not chunk:
                break  # what waits needs resources the running calls hold
            self._send(chunk)

    def _next_chunk(self) -> list[Job]:
        """The first job that fits the free resources, with the jobs asking for nothing
        after it when batching."""
        pool = self.pool if self.asking else None
        for index, job in enumerate(self.queue):
            if job.resources and pool is not None and not pool.fits(job.resources):
                continue
            del self.queue[index]
            if job.resources:
                self.asking -= 1
                return [job]  # a job holding resources runs alone
            chunk = [job]
            size = self._batch_size(job)
            while len(chunk) < size and index < len(self.queue):
                if self.queue[index].resources or self.queue[index].queue != job.queue:
                    break
                chunk.append(self.queue[index])
                del self.queue[index]
            return chunk
        return []

    def _send(self, chunk: list[Job]) -> None:
        now = time.time()
        if not self.futures and not self.records:
            # nothing waits to be committed: the flush clock starts with this submission,
            # or a cold run's first finished call would be flushed (and synced) alone
            self.last_flush = time.monotonic()
        for job in chunk:
            job.started = now
        tasks = [j.task for j in chunk]
        crashpoint("scheduler.submit")
        future = self._place(chunk, tasks)
        self.futures[future] = chunk
        needs = chunk[0].resources
        if needs and self.pool is not None:
            self.pool.take(needs)
            self.holding[future] = needs

    def _place(self, chunk: list[Job], tasks: list[Any]) -> Future[Any]:
        """Submit a task; executors that place tasks (dask, celery) learn what it asks."""
        args = (tasks, self.store, self.journal_id)
        first, timeouts = chunk[0], tuple(j.timeout for j in chunk)
        place = getattr(self.executor, "place", None)
        if (
            place is None
            or getattr(self.executor, "name", "") in LOCAL
            or not (first.resources or first.queue or any(timeouts))
        ):
            return self.executor.submit(run_batch, *args)  # type: ignore[no-any-return]
        placement = Placement(timeouts, first.resources, first.queue)
        return place(placement, run_batch, *args)  # type: ignore[no-any-return]

    def _batch_size(self, job: Job) -> int:
        if job.batch:
            return job.batch
        if self.inline:
            return 1  # nothing to save in-process; the driver gets control after each call
        seconds = self.durations.get(job.name)
        if seconds is None:
            return 1  # observe first
        per_worker = max(1, len(self.queue) // (2 * self.workers))
        wanted = int(BATCH_SECONDS / max(seconds, 1e-4))
        return max(1, min(wanted, per_worker, MAX_BATCH))

    # -- completion ----------------------------------------------------------------------------

    def wait(self, timeout: float) -> list[tuple[Job, Any]]:
        """Finished attempts (each to be passed to :meth:`settle`), waiting up to ``timeout``."""
        if self.stop.requested:
            self._stopping()
        self._due_retries()
        self._pump()
        finished: list[tuple[Job, Any]] = []
        if self.futures:
            done, _ = wait(list(self.futures), timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                held = self.holding.pop(future, None)
                if held is not None and self.pool is not None:
                    self.pool.give(held)
                finished += self._collect(future, self.futures.pop(future))
        elif self.retry_at:
            time.sleep(min(timeout, max(0.0, min(self.retry_at.values()) - time.monotonic())))
        self.tick()
        return finished

    def _collect(self, future: Future[Any], jobs: list[Job]) -> list[tuple[Job, Any]]:
        try:
            outcomes = future.result()
        except Exception as exc:
            return self._lost(jobs, exc)
        for job, outcome in zip(jobs, outcomes, strict=True):
            seconds = max(0.0, outcome.finished - outcome.started)
            before = self.durations.get(job.name)
            self.durations[job.name] = seconds if before is None else 0.7 * before + 0.3 * seconds
        return list(zip(jobs, outcomes, strict=True))

    def _lost(self, jobs: list[Job], exc: BaseException) -> list[tuple[Job, Any]]:
        """A task failed as a whole (its worker died): what finished is in the journal, and
        so is how an attempt ended that failed, or that its worker was ended for because it
        ran past its timeout (``worker.deadline``): those are reported, not run again."""
        reap = getattr(self.executor, "reap", None)
        if reap is not None:
            reap()  # the dead worker's pool-mates stopped: they journal nothing more
        adopted = journal.read(  # this run's entries too
            self.store,
            [j.key for j in jobs if j.lease],
            attempts={j.key: j.started for j in jobs if j.started},
        )
        # a lone call whose process was killed past its timeout is not run again to find out
        overran = isinstance(exc, CallTimeout) and len(jobs) == 1
        out: list[tuple[Job, Any]] = []
        for job in jobs:
            if job.key in adopted:
                out.append((job, adopted[job.key]))
            elif id(job) not in self.lost and not overran:
                self.lost.add(id(job))
                self.suspects.append(job)
            else:
                now = time.time()
                error = CallOutcome(
                    key=job.key,
                    status="failed",
                    error_type=type(exc).__name__,
                    error_message=str(exc) or "the worker running this call died",
                    started=job.started or now,
                    finished=now,
                )
                out.append((job, error))
        return out

    def settle(self, job: Job, outcome: Any, record: CallRecord | None) -> bool:
        """Record one attempt; True when it is final, False when it will be retried."""
        ok = outcome.status == "ok"
        if record is not None:
            self.records.append(record)
        if not ok and job.attempts <= job.retries:
            self.retry_at[job] = time.monotonic() + job.retry_delay
            return False
        if ok and job.lease:
            self.releasable.add(job.key)
        self.finished += ok
        return True

    def _due_retries(self) -> None:
        if not self.retry_at:
            return
        now = time.monotonic()
        due = [j for j, at in self.retry_at.items() if at <= now]
        for job in due:
            del self.retry_at[job]
        self.submit(due)

    def tick(self) -> None:
        """Flush finished calls and renew leases when due."""
        now = time.monotonic()
        if self.records and (
            now - self.last_flush >= FLUSH_SECONDS or len(self.records) >= FLUSH_CALLS
        ):
            self.flush()
        if self.held and now - self.last_renew > min(self.lease_ttl / 3, 60.0):
            self.catalog.renew(self.owner, self.lease_ttl)
            self.last_renew = now

    def flush(self) -> None:
        """Outputs durable, then their rows committed, then journal entries and leases go."""
        self.last_flush = time.monotonic()
        if not self.records:
            return
        batch, self.records = self.records, []
        self.store.sync(written=[a.path for r in batch for a in r.outputs.values()])
        crashpoint("scheduler.flush")
        self.catalog.record_calls(batch)
        ok = {r.key for r in batch if r.status == "ok"}
        finished, self.releasable = self.releasable & ok, self.releasable - ok
        self.release(finished)

    def close(self) -> None:
        """Commit what finished and release every lease (also on interruption)."""
        try:
            self.flush()
            journal.forget(self.store, self.journal_id)
        finally:
            if self.held:
                self.catalog.release(None, self.owner)
                self.held.clear()

    def _emit(self, job: Job, status: str) -> None:
        if self.progress is not None:
            self.progress(CallEvent(job.name, job.key, status))  # type: ignore[arg-type]


__all__ = ["Dispatcher", "Job", "Leased"]
