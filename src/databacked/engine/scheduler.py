"""The driver loop: key calls as upstream hashes become known, lease, submit, record.

Dependants are keyed on upstream *content* hashes, so an upstream recomputed to identical
bytes re-runs nothing downstream (early cut-off). Only this loop writes the catalog.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from databacked.engine.cache import classify
from databacked.engine.cancel import RunCancelled
from databacked.engine.dispatch import Dispatcher, Job
from databacked.engine.events import CallEvent
from databacked.engine.files import FileHasher
from databacked.engine.graph import CallNode, ExpandNode, Graph, Handle
from databacked.engine.plan import (
    CallState,
    check_conflicts,
    compute_key,
    output_specs,
    render_targets,
    upstream_ready,
)
from databacked.engine.records import call_record
from databacked.engine.resources import parse
from databacked.engine.worker import CallOutcome, CallSpec
from databacked.errors import PipelineError

POLL = 0.2
"""Seconds between looks at keys another driver is computing."""
LOW_WATER = 8
"""Keyed calls are leased and submitted once fewer than this many per worker are queued."""


class Scheduler:
    """Runs (or, with ``dry_run``, only plans) the calls of a traced graph."""

    def __init__(
        self,
        graph: Graph,
        store: Any,
        catalog: Any,
        executor: Any = None,
        *,
        run_id: str | None = None,
        verify: bool = False,
        progress: Callable[[CallEvent], None] | None = None,
        lease_ttl: float = 600.0,
        dry_run: bool = False,
        grace: float | None = None,
        resources: Mapping[str, Any] | None = None,
    ) -> None:
        self.graph, self.store, self.catalog, self.executor = graph, store, catalog, executor
        self.run_id, self.verify, self.progress = run_id, verify, progress
        self.lease_ttl, self.dry_run = lease_ttl, dry_run
        self.dispatch = Dispatcher(
            store,
            catalog,
            executor,
            run_id=run_id,
            lease_ttl=lease_ttl,
            progress=progress,
            grace=10.0 if dry_run else grace,
            resources={} if resources is None else resources,
        )
        self.states: dict[int, CallState] = {}
        self.order: list[CallState] = []
        self.targets: dict[str, CallState] = {}
        self.hasher = FileHasher(catalog)
        self.waiting_other: list[CallState] = []
        self.examine: dict[CallState, None] = {}
        """Pending calls to look at again: new ones, and those whose blocker just finished."""
        self.watchers: dict[int, list[CallState]] = {}
        """Node id -> pending calls blocked on it (``CallState.blocker``)."""
        self.keyed: list[CallState] = []
        """Calls keyed and due to run, not yet looked up and leased: they go to the catalog
        together when the dispatcher runs short of work, in a few waves instead of one per
        finished upstream."""
        self.expanders: list[ExpandNode] | None = None
        self.leaders: dict[str, CallState] = {}
        self.followers: dict[str, list[CallState]] = {}
        self.changed = True
        """Something finished or was added since the fan-outs were last looked at."""

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> list[CallState]:
        if self.dry_run:
            return self._loop()
        for node in self.graph.nodes:
            owner = f"Step {node.step.name}"
            self.dispatch.check_timeout(owner, node.step.timeout)
            self.dispatch.check_resources(owner, parse(node.step.resources, owner))
        with self.dispatch.signals():
            return self._loop()

    def _loop(self) -> list[CallState]:
        self._add([n for n in self.graph.nodes if isinstance(n, CallNode)])
        try:
            while True:
                progressed = self._expand() | self._advance()
                progressed |= self._submit_keyed()
                self._poll_others()
                busy = self.dispatch.busy or self.waiting_other
                if not busy:
                    if not progressed:
                        break
                    continue
                if self.dispatch.busy:
                    for job, outcome in self.dispatch.wait(POLL):
                        self._finished(job, outcome)
                else:
                    time.sleep(POLL / 4)
                    self.dispatch.tick()
        except KeyboardInterrupt as exc:
            if not isinstance(exc, RunCancelled) and not self.dry_run:
                self.dispatch.abort()  # a second Ctrl-C: stop now, the workers too
            raise
        finally:
            if not self.dry_run:
                self.dispatch.close()
        return self.order

    def _add(self, nodes: list[CallNode]) -> None:
        new = []
        for node in nodes:
            state = CallState(node)
            self.states[node.id] = state
            self.order.append(state)
            self.examine[state] = None
            render_targets(state, self.store)
            new.append(state)
        check_conflicts(new, self.targets)

    def _expand(self) -> bool:
        progressed = False
        if not self.changed:
            return False
        self.changed = False  # set again by whatever finishes or expands meanwhile
        if self.expanders is None:  # fan-outs are traced up front; only calls are added later
            self.expanders = [n for n in self.graph.nodes if isinstance(n, ExpandNode)]
        self.expanders = [n for n in self.expanders if n.children is None and not n.skipped]
        for node in list(self.expanders):
            columns = self._expansion_columns(node)
            if columns is None:
                continue
            progressed = True
            if columns == "skip":
                node.skipped = True
                self._wake(node.id)
                self.changed = True
                continue
            lengths = {name: len(v) for name, v in {**columns, **node.statics}.items()}
            if len(set(lengths.values())) > 1:
                raise PipelineError(
                    f"{node.step.name}.map() got iterables of different lengths {lengths} at "
                    "run time; pass equal lengths (they are zipped)."
                )
            n = next(iter(lengths.values()))
            children = []
            for i in range(n):
                args = {**node.consts, **{k: v[i] for k, v in {**node.statics, **columns}.items()}}
                children.append(self.graph.add_call(node.step, node.step.bind((), args)))
            node.children = children
            self._add(children)
            self._wake(node.id)
            self.changed = True
        return progressed

    def _expansion_columns(self, node: ExpandNode) -> dict[str, list[Any]] | str | None:
        columns: dict[str, list[Any]] = {}
        for name, source in node.sources.items():
            if isinstance(source, Handle):
                up = self.states[source.node.id]
                if up.status in ("failed", "skipped"):
                    return "skip"
                if up.status not in ("cached", "ran"):
                    return None
                items = self._load_value(up, source)
                if isinstance(items, str | bytes | dict) or not hasattr(items, "__iter__"):
                    raise PipelineError(
                        f"{node.step.name}.map({name}=...) iterates over the result of step "
                        f"{up.step.name!r}, which is a {type(items).__name__}, not a list; "
                        "return a list (or array/Series) from that step."
                    )
                columns[name] = list(items)
            else:
                assert source.expand is not None
                if source.expand.skipped:
                    return "skip"
                if source.expand.children is None:
                    return None
                columns[name] = source.handles()
        return columns

    def _load_value(self, state: CallState, handle: Handle) -> Any:
        name = handle.output or state.step.output_names[0]
        if not state.step.persist:
            return state.value[name] if state.step.multi else state.value
        from databacked.formats.registry import get_format

        record = state.records[name]
        return get_format(record.format).read(self.store, record.path)

    def _advance(self) -> bool:
        """Key the calls whose upstreams all finished (only those a change concerns)."""
        if not self.examine:
            return False
        examine, self.examine = self.examine, {}
        ready: list[CallState] = []
        progressed = False
        for state in examine:
            if state.status != "pending":
                continue
            verdict = upstream_ready(state, self.states)
            if verdict == "skip":
                self._set(state, "skipped", reason="upstream failed")
                progressed = True
            elif verdict == "ready":
                ready.append(state)
            else:
                assert state.blocker is not None
                self.watchers.setdefault(state.blocker, []).append(state)
        self.hasher.prefetch(ready)
        for state in ready:
            compute_key(state, self.states, self.hasher)
            render_targets(state, self.store)
            check_conflicts([state], self.targets)
        self.hasher.flush()
        if not ready:
            return progressed
        for state in ready:
            leader = self.leaders.get(state.key)
            if leader is not None and leader is not state:
                self.followers.setdefault(state.key, []).append(state)
                state.status = "running"
                if leader.done:
                    self._follow(leader)
            else:
                self.leaders[state.key] = state
                self.keyed.append(state)  # still "pending" until classified
        return True

    def _submit_keyed(self) -> bool:
        """Look up and lease the keyed calls, once the dispatcher's queue runs short (or
        at once when planning): cached ones are done, the others are submitted."""
        if not self.keyed:
            return False
        if not self.dry_run and len(self.dispatch.queue) > LOW_WATER * self.dispatch.workers:
            return False
        unique, self.keyed = self.keyed, []
        classify(unique, self.store, self.catalog, self.verify, refresh=not self.dry_run)
        runs = []
        for state in unique:
            if state.status == "cached":
                self._set(state, "cached")
            else:
                runs.append(state)
        if self.dry_run:
            for state in runs:
                state.status = "run"
                self._emit(state, "planned")
            return True
        self._lease_and_submit(runs)
        return True

    def _lease_and_submit(self, runs: list[CallState]) -> None:
        jobs = {s.key: self._job(s) for s in runs}
        leased = self.dispatch.lease(list(jobs.values()))
        if leased.done:
            # Another driver finished a key between our lookup and our lease: look again
            # under the lease, so no key is computed twice.
            again = [s for s in runs if s.key in leased.done]
            classify(again, self.store, self.catalog, self.verify)
            for state in again:
                if state.status == "cached":
                    self.dispatch.release([state.key])
                    self._set(state, "cached")
                else:
                    leased.mine.append(jobs[state.key])
        for job in leased.busy:
            job.state.status = "waiting"
            self.waiting_other.append(job.state)
        for key, outcome in leased.adopted.items():
            self._adopt(jobs[key], outcome)
        self.dispatch.submit(leased.mine)

    def _job(self, state: CallState) -> Job:
        step = state.step
        return Job(
            key=state.key,
            name=step.name,
            task=self._spec(state),
            state=state,
            lease=bool(step.cache and step.persist),
            retries=step.retries,
            retry_delay=step.retry_delay,
            batch=step.batch,
            timeout=step.timeout,
            resources=parse(step.resources, f"Step {step.name}"),
            queue=step.queue,
        )

    def _spec(self, state: CallState) -> CallSpec:
        return CallSpec(
            key=state.key,
            step=state.step.name,
            function=state.step.fn,
            params=state.params,
            inputs=state.inputs,
            outputs=output_specs(state),
            multi=state.step.multi,
            persist=state.step.persist,
            timeout=state.step.timeout,
        )

    def _adopt(self, job: Job, outcome: CallOutcome) -> None:
        """A call an interrupted run had finished (its journal entry): recorded, not rerun."""
        state = job.state
        state.records = dict(outcome.records)
        state.seconds = max(0.0, outcome.finished - outcome.started)
        self.dispatch.settle(job, outcome, call_record(state, outcome, self.run_id, self.store.url))
        self._set(state, "cached", reason="finished by an interrupted run")

    def _finished(self, job: Job, outcome: CallOutcome) -> None:
        state: CallState = job.state
        state.attempts = job.attempts
        state.seconds = max(0.0, outcome.finished - outcome.started)
        ok = outcome.status == "ok"
        record = None
        if not ok or state.step.persist:
            record = call_record(state, outcome, self.run_id, self.store.url)
        if not self.dispatch.settle(job, outcome, record):
            state.status = "retry"
            return
        if ok:
            state.records, state.value = dict(outcome.records), outcome.value
            self._set(state, "ran")
        else:
            self._set(state, "failed", error=f"{outcome.error_type}: {outcome.error_message}")

    def _poll_others(self) -> None:
        if not self.waiting_other:
            return
        waiting, self.waiting_other = self.waiting_other, []
        found = self.catalog.lookup([s.key for s in waiting], brief=True)
        done = [s for s in waiting if s.key in found]
        if done:
            classify(done, self.store, self.catalog, self.verify)
            for state in done:
                if state.status == "cached":
                    self._set(state, "cached")
        rest = [s for s in waiting if s.status != "cached"]
        if rest:
            time.sleep(POLL)
            self._lease_and_submit(rest)

    def _wake(self, node_id: int) -> None:
        for waiting in self.watchers.pop(node_id, ()):
            self.examine[waiting] = None

    def _set(self, state: CallState, status: str, *, reason: str = "", error: str = "") -> None:
        state.status = status
        self.changed = True
        if status in ("cached", "ran", "failed", "skipped"):
            self._wake(state.node.id)
        if reason:
            state.reason = reason
        if error:
            state.error = error
        self._emit(state, status, error=error or None)
        if status in ("cached", "ran", "failed") and self.leaders.get(state.key) is state:
            self._follow(state)

    def _follow(self, leader: CallState) -> None:
        for follower in self.followers.pop(leader.key, []):
            follower.records, follower.value = leader.records, leader.value
            status = "failed" if leader.status == "failed" else "cached"
            self._set(follower, status, reason=leader.reason, error=leader.error)

    def _emit(self, state: CallState, status: str, *, error: str | None = None) -> None:
        if self.progress is not None:
            self.progress(CallEvent(state.step.name, state.key, status, state.seconds, error))  # type: ignore[arg-type]


__all__ = ["Scheduler"]
