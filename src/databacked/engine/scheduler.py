"""The driver loop: key calls as upstream hashes become known, lease, submit, record.

Dependants are keyed on upstream *content* hashes, so an upstream recomputed to identical
bytes re-runs nothing downstream (early cut-off). Only this loop writes the catalog.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from databacked.catalog.records import CallRecord
from databacked.crashpoints import crashpoint
from databacked.engine.cache import classify
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
from databacked.engine.worker import CallOutcome, CallSpec, run_batch, run_call
from databacked.errors import PipelineError
from databacked.executors.base import split_batch

POLL = 0.2
"""Seconds between looks at keys another driver is computing."""


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
    ) -> None:
        self.graph, self.store, self.catalog, self.executor = graph, store, catalog, executor
        self.run_id, self.verify, self.progress = run_id, verify, progress
        self.lease_ttl, self.dry_run = lease_ttl, dry_run
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.states: dict[int, CallState] = {}
        self.order: list[CallState] = []
        self.targets: dict[str, CallState] = {}
        self.hasher = FileHasher(catalog)
        self.futures: dict[Future[Any], CallState] = {}
        self.retry_at: dict[int, float] = {}
        self.waiting_other: list[CallState] = []
        self.leaders: dict[str, CallState] = {}
        self.followers: dict[str, list[CallState]] = {}
        self.to_record: list[CallRecord] = []
        self.leased: set[str] = set()
        self.started: dict[int, float] = {}
        self.suspects: list[CallState] = []
        """Calls whose worker died: re-run one at a time to find which call kills it."""
        self.lost: set[int] = set()
        self.changed = True
        """Something finished or was added since pending calls were last examined."""

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> list[CallState]:
        self._add([n for n in self.graph.nodes if isinstance(n, CallNode)])
        last_renew = time.monotonic()
        try:
            while True:
                progressed = self._expand() | self._advance()
                self._submit_retries()
                if self.suspects and not self.futures:
                    suspect = self.suspects.pop(0)
                    suspect.attempts -= 1
                    self._submit([suspect])
                self._poll_others()
                self._flush()
                busy = self.futures or self.waiting_other or self.retry_at or self.suspects
                if not busy:
                    if not progressed:
                        break
                    continue
                if self.futures:
                    done, _ = wait(list(self.futures), timeout=POLL, return_when=FIRST_COMPLETED)
                    for future in done:
                        self._finished(self.futures.pop(future), future)
                else:
                    time.sleep(POLL / 4)
                if self.leased and time.monotonic() - last_renew > self.lease_ttl / 3:
                    self.catalog.renew(self.owner, self.lease_ttl)
                    last_renew = time.monotonic()
        finally:
            self._flush()
            if self.leased and not self.dry_run:
                self.catalog.release(None, self.owner)
        return self.order

    def _add(self, nodes: list[CallNode]) -> None:
        new = []
        for node in nodes:
            state = CallState(node)
            self.states[node.id] = state
            self.order.append(state)
            render_targets(state, self.store)
            new.append(state)
        check_conflicts(new, self.targets)

    def _expand(self) -> bool:
        progressed = False
        for node in self.graph.nodes:
            if not isinstance(node, ExpandNode) or node.children is not None or node.skipped:
                continue
            columns = self._expansion_columns(node)
            if columns is None:
                continue
            progressed = True
            if columns == "skip":
                node.skipped = True
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
        ready: list[CallState] = []
        progressed = False
        # re-examine waiting calls only after something finished (keeps big graphs linear-ish)
        if not self.changed:
            return False
        self.changed = False
        for state in self.order:
            if state.status != "pending":
                continue
            verdict = upstream_ready(state, self.states)
            if verdict == "skip":
                self._set(state, "skipped", reason="upstream failed")
                progressed = True
            elif verdict == "ready":
                ready.append(state)
        self.hasher.prefetch(ready)
        for state in ready:
            compute_key(state, self.states, self.hasher)
            render_targets(state, self.store)
            check_conflicts([state], self.targets)
        self.hasher.flush()
        if not ready:
            return progressed
        unique = []
        for state in ready:
            leader = self.leaders.get(state.key)
            if leader is not None and leader is not state:
                self.followers.setdefault(state.key, []).append(state)
                state.status = "running"
                if leader.done:
                    self._follow(leader)
            else:
                self.leaders[state.key] = state
                unique.append(state)
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
        leasable = [s.key for s in runs if s.step.cache and s.step.persist]
        got = self.catalog.acquire(leasable, self.owner, self.lease_ttl) if leasable else set()
        self.leased |= got
        if got:
            # Another driver may have finished a key between our lookup and our lease: look
            # again under the lease, so no key is computed twice.
            done = self.catalog.lookup(got)
            if done:
                again = [s for s in runs if s.key in done]
                classify(again, self.store, self.catalog, self.verify)
                for state in again:
                    if state.status == "cached":
                        self._set(state, "cached")
                runs = [s for s in runs if s.status != "cached"]
        submit = []
        for state in runs:
            if state.step.cache and state.step.persist and state.key not in got:
                state.status = "waiting"
                self.waiting_other.append(state)
            else:
                submit.append(state)
        self._submit(submit)

    def _submit(self, states: list[CallState]) -> None:
        if not states:
            return
        specs = [(self._spec(s), s) for s in states]
        for _, state in specs:
            state.status = "running"
            state.attempts += 1
            self.started[state.node.id] = time.time()
            self._emit(state, "running")
        crashpoint("scheduler.submit")
        workers = max(1, getattr(self.executor, "max_workers", 1))
        chunk = _chunk_size(len(specs), workers, states[0].step.batch)
        if chunk <= 1:
            for spec, state in specs:
                self.futures[self.executor.submit(run_call, spec, self.store)] = state
            return
        for i in range(0, len(specs), chunk):
            group = specs[i : i + chunk]
            future = self.executor.submit(run_batch, [s for s, _ in group], self.store)
            # one future per call; a dead worker fails every call of its chunk
            for item, (_, state) in zip(split_batch(future, len(group)), group, strict=True):
                self.futures[item] = state

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
        )

    def _finished(self, state: CallState, future: Future[Any]) -> None:
        try:
            outcome: CallOutcome = future.result()
        except Exception as exc:
            if state.node.id not in self.lost:
                # A dead worker fails every call in its pool; run each again alone, so only
                # the call that kills its worker ends up failed.
                self.lost.add(state.node.id)
                state.status = "retry"
                self.suspects.append(state)
                return
            now = time.time()
            outcome = CallOutcome(
                key=state.key,
                status="failed",
                error_type=type(exc).__name__,
                error_message=str(exc) or "the worker running this call died",
                started=self.started.get(state.node.id, now),
                finished=now,
            )
        state.seconds = max(0.0, outcome.finished - outcome.started)
        if outcome.status == "ok":
            state.records, state.value = dict(outcome.records), outcome.value
            if state.step.persist:
                self.to_record.append(call_record(state, outcome, self.run_id, self.store.url))
            self._set(state, "ran")
            return
        self.to_record.append(call_record(state, outcome, self.run_id, self.store.url))
        if state.attempts <= state.step.retries:
            state.status = "retry"
            self.retry_at[state.node.id] = time.monotonic() + state.step.retry_delay
            return
        self._set(state, "failed", error=f"{outcome.error_type}: {outcome.error_message}")

    def _submit_retries(self) -> None:
        now = time.monotonic()
        due = [i for i, at in self.retry_at.items() if at <= now]
        for i in due:
            del self.retry_at[i]
        self._submit([self.states[i] for i in due])

    def _poll_others(self) -> None:
        if not self.waiting_other:
            return
        waiting, self.waiting_other = self.waiting_other, []
        found = self.catalog.lookup([s.key for s in waiting])
        done = [s for s in waiting if s.key in found]
        if done:
            classify(done, self.store, self.catalog, self.verify)
            for state in done:
                if state.status == "cached":
                    self._set(state, "cached")
        rest = [s for s in waiting if s.status != "cached"]
        if rest:
            self._break_dead_leases([s.key for s in rest])
            time.sleep(POLL)
            self._lease_and_submit(rest)

    def _break_dead_leases(self, keys: list[str]) -> None:
        """Leases of a driver on this host whose process is gone are released at once,
        so a resume after ``kill -9`` does not wait for their time-to-live."""
        host = socket.gethostname()
        dead: dict[str, list[str]] = {}
        for key, lease in self.catalog.leases_of_others(keys, self.owner).items():
            if lease.host == host and lease.pid and not _alive(lease.pid):
                dead.setdefault(lease.owner, []).append(key)
        for owner, owned in dead.items():
            self.catalog.release(owned, owner)

    def _flush(self) -> None:
        if not self.to_record or self.dry_run:
            return
        batch, self.to_record = self.to_record, []
        self.store.sync()
        crashpoint("scheduler.flush")
        self.catalog.record_calls(batch)
        finished = {r.key for r in batch if r.status == "ok"} & self.leased
        if finished:
            self.catalog.release(finished, self.owner)
            self.leased -= finished

    def _set(self, state: CallState, status: str, *, reason: str = "", error: str = "") -> None:
        state.status = status
        self.changed = True
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _chunk_size(n: int, workers: int, batch: int | None) -> int:
    if batch:
        return batch
    # group only when there are far more calls than workers: 100,000 tiny calls, not 8
    if n <= 8 * workers:
        return 1
    return min(64, n // (4 * workers))


__all__ = ["Scheduler"]
