"""The incremental spec runner: pipelines in dependency order, only new or changed datums.

Per pipeline: classify its datums (``specs.plan``), lease and run what is new or changed on the
executor, record calls, outputs and lineage in batches, and remove the outputs of datums whose
inputs disappeared (the catalog keeps their history; the bytes wait by content in the attic,
``specs.attic``, until ``gc``, so files that come back compute nothing again).

Example::

    result = run_specs("pipelines/", store=Store("data"), catalog=Catalog.open("c.db"),
                       executor="processes")
    print(result.summary())
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from databacked.catalog import Catalog
from databacked.catalog.records import CallRecord, InputRef
from databacked.engine.events import CallEvent
from databacked.executors import Executor, get_executor, split_batch
from databacked.specs.attic import attic_path, move_file
from databacked.specs.datums import Datum
from databacked.specs.model import Spec
from databacked.specs.plan import (
    DatumRow,
    DatumState,
    Planner,
    SpecPlan,
    ordered_specs,
    plan_specs,
)
from databacked.specs.transform import DatumOutcome, DatumTask, run_datum
from databacked.store import Store

LEASE_TTL = 300.0
"""Seconds a datum's lease lasts without renewal; renewed while the run waits."""
FLUSH_SECONDS = 5.0
FLUSH_CALLS = 500
"""Finished datums are recorded at least this often (seconds) or in batches this large."""
BATCH = 32
"""Most datums per executor task when there are many more datums than workers."""


@dataclass(frozen=True, slots=True)
class SpecRunResult(SpecPlan):
    """What ``run_specs`` did; ``ok`` is False when any datum failed."""

    run_id: str = ""

    @property
    def ok(self) -> bool:
        return not any(r.status == "failed" for r in self.rows)


def run_specs(
    folder_or_specs: str | os.PathLike[str] | Sequence[Spec],
    *,
    store: Store | str,
    catalog: Catalog | str | None = None,
    executor: Executor | str = "inline",
    workers: int | None = None,
    progress: Callable[[CallEvent], None] | None = None,
) -> SpecRunResult:
    """Run every pipeline's new and changed datums, in dependency order."""
    store = Store.from_url(store)
    specs, project = ordered_specs(folder_or_specs, store)  # bad specs fail before anything opens
    own_catalog = not isinstance(catalog, Catalog)
    cat = Catalog.coerce(catalog)
    own_executor = isinstance(executor, str)
    pool = get_executor(executor, workers=workers) if isinstance(executor, str) else executor
    owner = f"specs-{uuid.uuid4().hex}"
    rows: list[DatumRow] = []
    run_id = ""
    try:
        run_id = cat.start_run(
            {"pipeline": ",".join(s.pipeline for s in specs), "host": socket.gethostname(),
             "pid": os.getpid(), "python": sys.version.split()[0]}
        )  # fmt: skip
        unsettled: dict[str, list[Datum]] = {}
        for spec in specs:
            planner = Planner(spec, store, cat, unsettled, project)
            states, removed = planner.classify()
            _Execution(planner, pool, owner, run_id, progress).run(states)
            kept = {path for s in states for path in s.outputs}
            for row in removed:
                for path in set(row.outputs) - kept:  # never what a present datum wrote
                    full = f"{spec.pipeline}/{path}"
                    if not planner.stash(full, move=True):
                        store.delete(full)
            unsettled[spec.pipeline] = [
                s.datum for s in states if s.status in ("failed", "waiting")
            ]
            rows += [s.row() for s in states] + removed
        result = SpecRunResult(tuple(rows), run_id)
        cat.finish_run(run_id, "ok" if result.ok else "failed", {"counts": result.counts()})
    except BaseException:
        if run_id:  # an interrupted or broken run is not left "running" in the catalog
            with contextlib.suppress(Exception):
                cat.finish_run(run_id, "error", {"counts": SpecPlan(tuple(rows)).counts()})
        raise
    finally:
        if run_id:
            cat.release(None, owner)
        if own_executor:
            pool.close()
        if own_catalog:
            cat.close()
    return result


def run_task(task: DatumTask, store: Store) -> DatumOutcome:
    """What executors run for one datum (a top-level function, pickled by reference)."""
    return run_datum(task, store)


# --- execution ------------------------------------------------------------------------------


class _Execution:
    """Leases, submits and records one pipeline's datums that need to run."""

    def __init__(
        self,
        planner: Planner,
        pool: Executor,
        owner: str,
        run_id: str,
        progress: Callable[[CallEvent], None] | None,
    ) -> None:
        self.planner, self.pool, self.owner, self.run_id = planner, pool, owner, run_id
        self.catalog, self.store = planner.catalog, planner.store
        self.progress = progress or (lambda _event: None)
        self.records: list[CallRecord] = []
        self.failures: list[CallRecord] = []

    def run(self, states: list[DatumState]) -> None:
        name = self.planner.spec.pipeline
        for s in states:
            self.progress(CallEvent(name, s.key, "planned"))  # sizes a progress bar
        self._restore(states)
        todo = self._lease([s for s in states if s.status in ("new", "changed")])
        for s in states:
            if s.status == "cached":
                self.progress(CallEvent(name, s.key, "cached"))
            elif s.status == "waiting":
                self.progress(CallEvent(name, s.key, "skipped"))
        for s in todo:  # outputs about to be overwritten stay reachable by content
            for path in self.planner.before.get(s.slot, ("", []))[1]:
                self.planner.stash(f"{s.pipeline}/{path}", move=False)
        futures = self._submit_all(todo)
        claimed = self._claims(states)
        last = time.monotonic()
        try:
            while futures:
                done, _ = cf.wait(futures, timeout=FLUSH_SECONDS, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    state = futures.pop(future)
                    outcome = _outcome(future, state.key)
                    if outcome.status == "ok":
                        outcome = self._check_collisions(outcome, state, claimed)
                    if outcome.status != "ok" and state.attempts <= self.planner.spec.retries:
                        futures[self._submit(state)] = state
                        continue
                    record = self._record(state, outcome)
                    (self.records if outcome.status == "ok" else self.failures).append(record)
                if time.monotonic() - last > FLUSH_SECONDS or len(self.records) >= FLUSH_CALLS:
                    self._flush()
                    self.catalog.renew(self.owner, LEASE_TTL)
                    last = time.monotonic()
        finally:
            # what finished is recorded even when the run is interrupted: the next resumes
            self._flush()
        self._drop_stale(states)
        self.catalog.release([s.key for s in todo], self.owner)

    def _flush(self) -> None:
        if self.records:
            self.store.sync()  # outputs durable before their rows commit
            self.catalog.record_calls(self.records)
            self.records = []
        if self.failures:
            self.catalog.record_failures(self.failures)
            self.failures = []

    def _lease(self, todo: list[DatumState]) -> list[DatumState]:
        """The datums this driver now holds and still has to compute."""
        if not todo:
            return []
        keys = {s.key for s in todo}
        held = self.catalog.acquire(keys, self.owner, LEASE_TTL)
        if held != keys and self._break_dead_leases(keys - held):
            held = self.catalog.acquire(keys, self.owner, LEASE_TTL)
        # Another driver may have completed a key between our lookup and our lease.
        fresh = [s.key for s in todo if s.key in held and not s.had_row]
        done = self.catalog.lookup(fresh) if fresh else {}
        mine = []
        for s in todo:
            if s.key not in held:
                s.status, s.reason = "waiting", "waiting: running in another driver"
            elif s.key in done:
                s.status, s.reason = "cached", "computed by another driver"
                s.outputs = tuple(
                    a.path[len(s.pipeline) + 1 :] for a in done[s.key].outputs.values()
                )
            else:
                mine.append(s)
        if done:
            self.catalog.release(done, self.owner)
        return mine

    def _break_dead_leases(self, keys: set[str]) -> bool:
        """Release leases of drivers on this host whose process is gone (after kill -9)."""
        host = socket.gethostname()
        dead: dict[str, list[str]] = {}
        for key, lease in self.catalog.leases_of_others(keys, self.owner).items():
            if lease.host == host and lease.pid and not _alive(lease.pid):
                dead.setdefault(lease.owner, []).append(key)
        for owner, owned in dead.items():
            self.catalog.release(owned, owner)
        return bool(dead)

    def _restore(self, states: list[DatumState]) -> None:
        restamped = []
        for s in states:
            if not s.restore:
                continue
            for _src, dst in s.restore:
                self.planner.stash(dst, move=True)  # what is there now may come back later
            if not all(move_file(self.store, src, dst) for src, dst in s.restore):
                s.status, s.reason = "changed", "output missing"
                continue
            row = self.catalog.lookup([s.key]).get(s.key)
            if row is None:
                continue
            infos = self.store.infos([a.path for a in row.outputs.values()])
            outputs = {}
            for name, art in row.outputs.items():
                info = infos.get(art.path)
                if info is not None and info.stamp != art.stamp:
                    outputs[name] = replace(art, stamp=info.stamp)
            if outputs:  # an object store gives new ETags: record them, so stat stays enough
                restamped.append(
                    CallRecord(key=s.key, step=s.pipeline, store=self.store.url, outputs=outputs)
                )
        if restamped:
            self.catalog.record_calls(restamped)

    def _submit_all(self, states: list[DatumState]) -> dict[cf.Future[Any], DatumState]:
        """Many short datums go in chunks, one executor task each (DESIGN section 6)."""
        workers = max(1, getattr(self.pool, "max_workers", 1) or 1)
        size = min(BATCH, len(states) // (4 * workers))
        if size < 2:
            return {self._submit(s): s for s in states}
        futures: dict[cf.Future[Any], DatumState] = {}
        for start in range(0, len(states), size):
            chunk = states[start : start + size]
            for state in chunk:
                state.attempts += 1
                self.progress(CallEvent(state.pipeline, state.key, "running"))
            args = [(self.planner.task(s), self.store) for s in chunk]
            batch = self.pool.submit_batch(run_task, args)
            futures.update(zip(split_batch(batch, len(chunk)), chunk, strict=True))
        return futures

    def _submit(self, state: DatumState) -> cf.Future[Any]:
        state.attempts += 1
        self.progress(CallEvent(state.pipeline, state.key, "running"))
        return self.pool.submit(run_task, self.planner.task(state), self.store)

    def _claims(self, states: list[DatumState]) -> dict[str, str]:
        """Output path -> slot, for outputs of datums that are still present."""
        present = {s.slot for s in states}
        return {
            path: datum
            for datum, (_key, paths) in self.planner.before.items()
            if datum in present
            for path in paths
        }

    def _check_collisions(
        self, outcome: DatumOutcome, state: DatumState, claimed: dict[str, str]
    ) -> DatumOutcome:
        for path in outcome.records:
            other = claimed.setdefault(path, state.slot)
            if other != state.slot:
                return replace(
                    outcome,
                    status="failed",
                    records={},
                    error_type="SpecError",
                    error_message=(
                        f"pipeline '{state.pipeline}': datum {state.datum.id} wrote "
                        f"{state.pipeline}/{path}, which datum {other} writes too; write "
                        "outputs under a name of the datum (e.g. '{plate}/...')."
                    ),
                )
        return outcome

    def _record(self, state: DatumState, outcome: DatumOutcome) -> CallRecord:
        seconds = outcome.finished - outcome.started if outcome.finished else None
        ok = outcome.status == "ok"
        state.status = "ran" if ok else "failed"
        state.seconds = seconds
        state.outputs = tuple(sorted(outcome.records))
        state.error = "" if ok else outcome.error_message
        self.progress(
            CallEvent(state.pipeline, state.key, state.status, seconds, state.error or None)
        )
        d = state.datum
        return CallRecord(
            key=state.key,
            step=state.pipeline,
            fingerprint=self.planner.fingerprint,
            run_id=self.run_id,
            status="ok" if ok else "failed",
            store=self.store.url,
            params={
                "datum": d.id,
                "slot": state.slot,
                "group": d.group,
                "attributes": dict(d.attributes),
                **({"container": c.describe()} if (c := self.planner.container) else {}),
            },
            inputs={"files": [InputRef(f.hash, f.store_path) for f in d.files]},
            outputs=outcome.records,
            started=outcome.started,
            finished=outcome.finished,
            host=socket.gethostname(),
            pid=outcome.pid,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            error_type=outcome.error_type,
            error_message=outcome.error_message,
            traceback=outcome.traceback,
        )

    def _drop_stale(self, states: Iterable[DatumState]) -> None:
        """A re-run datum's earlier outputs that it no longer writes leave the repo."""
        for s in states:
            if s.status != "ran" or s.slot not in self.planner.before:
                continue
            for path in set(self.planner.before[s.slot][1]) - set(s.outputs):
                self.store.delete(f"{s.pipeline}/{path}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _outcome(future: cf.Future[Any], key: str) -> DatumOutcome:
    try:
        return future.result()
    except Exception as exc:  # the executor lost the task (dead worker, cluster gone)
        return DatumOutcome(key, "failed", error_type=type(exc).__name__, error_message=str(exc))


__all__ = [
    "DatumRow",
    "SpecPlan",
    "SpecRunResult",
    "attic_path",
    "plan_specs",
    "run_specs",
    "run_task",
]
