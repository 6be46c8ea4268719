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

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from databacked.catalog import Catalog
from databacked.catalog.records import CallRecord, InputRef
from databacked.engine import provenance
from databacked.engine.cancel import RunCancelled
from databacked.engine.dispatch import Dispatcher, Job
from databacked.engine.events import CallEvent
from databacked.engine.resources import parse
from databacked.engine.worker import CallOutcome
from databacked.executors import Executor, get_executor
from databacked.specs.attic import attic_path, move_file
from databacked.specs.datums import Datum
from databacked.specs.model import Spec, duration_seconds
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

WAIT = 0.5
"""Seconds the driver waits for a datum to finish before it looks at its leases again."""


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
    grace: float | None = None,
    resources: dict[str, Any] | None = None,
) -> SpecRunResult:
    """Run every pipeline's new and changed datums, in dependency order.

    Each datum becomes a call handed to the engine's dispatcher (``engine.dispatch``), the
    same leases (their time-to-live from the settings), batches, retries and catalog writes
    as ``db.run``; the run records git state, package versions and configuration. SIGINT or
    SIGTERM stop it after ``grace`` seconds for the running datums (``engine.cancel``).
    ``resources``: capacities the datums' ``resources`` share (None: the settings).
    """
    store = Store.from_url(store)
    specs, project = ordered_specs(folder_or_specs, store)  # bad specs fail before anything opens
    own_catalog = not isinstance(catalog, Catalog)
    cat = Catalog.coerce(catalog)
    own_executor = isinstance(executor, str)
    pool = get_executor(executor, workers=workers) if isinstance(executor, str) else executor
    rows: list[DatumRow] = []
    run_id = ""
    dispatch = Dispatcher(store, cat, pool, progress=progress, grace=grace, resources=resources)
    handlers = contextlib.ExitStack()
    try:
        config = {"store": store.url, "catalog": cat.url_redacted, **dispatch.describe()}
        info = provenance.run_info(
            ",".join(s.pipeline for s in specs), _modules(specs), config, folder=project
        )
        for spec in specs:  # a timeout the executor cannot enforce fails before anything runs
            dispatch.check_timeout(f"Pipeline {spec.pipeline}", _timeouts(spec)[0])
            dispatch.check_resources(f"Pipeline {spec.pipeline}", _needs(spec))
        run_id = dispatch.run_id = cat.start_run(info)
        unsettled: dict[str, list[Datum]] = {}
        handlers.enter_context(dispatch.signals())
        for spec in specs:
            planner = Planner(spec, store, cat, unsettled, project)
            states, removed = planner.classify()
            if planner.restamps:
                cat.record_calls(planner.restamps)
            _Execution(planner, dispatch, run_id, progress).run(states)
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
        dispatch.close()
        result = SpecRunResult(tuple(rows), run_id)
        cat.finish_run(run_id, "ok" if result.ok else "failed", {"counts": result.counts()})
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunCancelled):
            dispatch.abort()  # a second Ctrl-C: stop now, the workers too
        with contextlib.suppress(Exception):  # what finished is recorded even when interrupted
            dispatch.close()
        if run_id:  # an interrupted or broken run is not left "running" in the catalog
            with contextlib.suppress(Exception):
                cat.finish_run(run_id, "error", {"counts": SpecPlan(tuple(rows)).counts()})
        raise
    finally:
        handlers.close()
        if own_executor:
            pool.close()
        if own_catalog:
            cat.close()
    return result


def _timeouts(spec: Spec) -> tuple[float | None, float | None]:
    """(seconds one datum may run, seconds the pipeline's datums may take in one run)."""
    datum = duration_seconds(spec.datum_timeout)
    job = duration_seconds(spec.job_timeout)
    return (min(datum or job or 0, job or datum or 0) or None), job


def _needs(spec: Spec) -> dict[str, float]:
    """What one datum holds while it runs (``resources``/``resource_requests``)."""
    r = spec.resources
    if r is None:
        return {}
    return parse({"cpus": r.cpu, "memory": r.memory, "gpus": r.gpu}, f"Pipeline {spec.pipeline}")


def _modules(specs: Sequence[Spec]) -> list[str]:
    """Modules of the Python transforms, for the package versions of the run."""
    return [s.transform.python.split(":")[0] for s in specs if s.transform.python]


def run_task(task: DatumTask, store: Store) -> DatumOutcome:
    """``run_datum``, by its earlier name (messages of earlier drivers name it)."""
    return run_datum(task, store)


# --- execution ------------------------------------------------------------------------------


class _Execution:
    """Hands one pipeline's datums that need to run to the dispatcher, and records them."""

    def __init__(
        self,
        planner: Planner,
        dispatch: Dispatcher,
        run_id: str,
        progress: Callable[[CallEvent], None] | None,
    ) -> None:
        self.planner, self.dispatch, self.run_id = planner, dispatch, run_id
        self.catalog, self.store = planner.catalog, planner.store
        self.progress = progress or (lambda _event: None)

    def run(self, states: list[DatumState]) -> None:
        name = self.planner.spec.pipeline
        for s in states:
            self.progress(CallEvent(name, s.key, "planned"))  # sizes a progress bar
        self._restore(states)
        todo = self._claim([s for s in states if s.status in ("new", "changed")])
        for s in states:
            if s.status == "cached":
                self.progress(CallEvent(name, s.key, "cached"))
            elif s.status == "waiting":
                self.progress(CallEvent(name, s.key, "skipped"))
        for job in todo:  # outputs about to be overwritten stay reachable by content
            for path in self.planner.before.get(job.state.slot, ("", []))[1]:
                self.planner.stash(f"{job.state.pipeline}/{path}", move=False)
        claimed = self._claims(states)
        self.dispatch.submit(todo)
        job_seconds = _timeouts(self.planner.spec)[1]
        end = time.monotonic() + job_seconds if job_seconds else None
        while self.dispatch.busy:
            if end is not None and time.monotonic() > end:
                why = f"timeout after {job_seconds:g} s (job_timeout reached before it ran)"
                for job in self.dispatch.cancel():
                    self._finish(job.state, _failed(job, why))
                end = None
            for job, attempt in self.dispatch.wait(WAIT):
                state: DatumState = job.state
                state.attempts = job.attempts
                outcome = self._check_collisions(attempt, state, claimed)
                if self.dispatch.settle(job, outcome, self._record(state, outcome)):
                    self._finish(state, outcome)
        self.dispatch.flush()
        self._drop_stale(states)
        self.dispatch.release(job.key for job in todo)

    def _job(self, state: DatumState) -> Job:
        spec = self.planner.spec
        timeout = _timeouts(spec)[0]
        return Job(
            key=state.key,
            name=state.pipeline,
            task=(run_datum, self.planner.task(state), timeout),  # light in workers
            state=state,
            known=state.had_row,
            retries=spec.retries,
            timeout=timeout,
            resources=_needs(spec),
            queue=spec.queue,
        )

    def _claim(self, todo: list[DatumState]) -> list[Job]:
        """The datums this driver now holds and still has to compute, as engine jobs."""
        if not todo:
            return []
        leased = self.dispatch.lease([self._job(s) for s in todo])
        for job in leased.busy:
            job.state.status, job.state.reason = "waiting", "waiting: running in another driver"
        for key, row in leased.done.items():
            for s in todo:
                if s.key == key:
                    s.status, s.reason = "cached", "computed by another driver"
                    s.outputs = tuple(a.path[len(s.pipeline) + 1 :] for a in row.outputs.values())
        self.dispatch.release(leased.done)
        if leased.adopted:
            by_key = {s.key: s for s in todo}
            for key, outcome in leased.adopted.items():
                state = by_key[key]
                job = self._job(state)
                self.dispatch.settle(job, outcome, self._record(state, outcome))
                self._finish(state, outcome)
                state.status, state.reason = "cached", "finished by an interrupted run"
        return leased.mine

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
    ) -> Any:
        if outcome.status != "ok":
            return outcome
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

    def _finish(self, state: DatumState, outcome: Any) -> None:
        """The datum's final state after its last attempt."""
        ok = outcome.status == "ok"
        state.status = "ran" if ok else "failed"
        state.seconds = outcome.finished - outcome.started if outcome.finished else None
        state.outputs = tuple(sorted(outcome.records))
        state.error = "" if ok else outcome.error_message
        self.progress(
            CallEvent(state.pipeline, state.key, state.status, state.seconds, state.error or None)
        )

    def _record(self, state: DatumState, outcome: Any) -> CallRecord:
        d = state.datum
        return CallRecord(
            key=state.key,
            step=state.pipeline,
            fingerprint=self.planner.fingerprint,
            run_id=self.run_id,
            status="ok" if outcome.status == "ok" else "failed",
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
            host=getattr(outcome, "host", "") or socket.gethostname(),
            pid=outcome.pid,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            log=getattr(outcome, "log", ""),
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


def _failed(job: Job, message: str) -> CallOutcome:
    now = time.time()
    return CallOutcome(job.key, "failed", error_type="CallTimeout", error_message=message,
                       started=now, finished=now)  # fmt: skip


__all__ = [
    "DatumRow",
    "SpecPlan",
    "SpecRunResult",
    "attic_path",
    "plan_specs",
    "run_specs",
    "run_task",
]
