"""The incremental spec runner: pipelines in dependency order, only new or changed datums.

Per pipeline: match its datums (content hashes through the catalog's stat cache, so an
unchanged file is never read again), key them (``datum_key``), look the keys up in the
catalog in one batch, lease and run what is new or changed on the executor, record calls,
outputs and lineage, and remove the outputs of datums whose inputs disappeared (the catalog
keeps their history; the bytes wait by content in the object area until ``gc``, so files that
come back compute nothing again). A group datum that reads another pipeline's repo waits while an
upstream datum of its group failed or waits in this run, or while the completeness its
group declares is not met.

Example::

    result = run_specs("pipelines/", store=Store("data"), catalog=Catalog.open("c.db"),
                       executor="processes")
    print(result.summary())
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from databacked.catalog import Catalog
from databacked.catalog.records import CallRecord, InputRef
from databacked.engine.events import CallEvent
from databacked.engine.worker import OBJECTS
from databacked.errors import ArtifactNotFound, DatabackedError
from databacked.executors import Executor, get_executor, split_batch
from databacked.specs.complete import is_complete
from databacked.specs.datums import Datum, datum_key, match_datums
from databacked.specs.graph import spec_order
from databacked.specs.loading import load_specs
from databacked.specs.model import Spec
from databacked.specs.transform import (
    DatumOutcome,
    DatumTask,
    placeholder_values,
    run_datum,
    transform_identity,
)
from databacked.store import FileInfo, Store

LEASE_TTL = 300.0
"""Seconds a datum's lease lasts without renewal; renewed while the run waits."""
YOUNG_NS = 2_000_000_000
"""Files modified this recently are hashed but not stat-cached (coarse mtime clocks)."""
FLUSH_SECONDS = 5.0
FLUSH_CALLS = 500
"""Finished datums are recorded at least this often (seconds) or in batches this large."""
BATCH = 32
"""Most datums per executor task when there are many more datums than workers."""
_UNSETTLED = ("new", "changed", "waiting", "failed")


@dataclass(frozen=True, slots=True)
class DatumRow:
    """One datum's fate in a plan or run."""

    pipeline: str
    datum: str
    key: str
    status: str
    """plan: new|changed|cached|waiting|removed; run: ran|cached|failed|waiting|removed."""
    reason: str = ""
    seconds: float | None = None
    outputs: tuple[str, ...] = ()
    error: str = ""
    attributes: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class SpecPlan:
    """What ``plan_specs`` found: one row per datum (and per removed datum)."""

    rows: tuple[DatumRow, ...]

    def counts(self) -> dict[str, dict[str, int]]:
        """pipeline -> status -> number of datums."""
        out: dict[str, dict[str, int]] = {}
        for row in self.rows:
            per = out.setdefault(row.pipeline, {})
            per[row.status] = per.get(row.status, 0) + 1
        return out

    def of(self, pipeline: str, status: str | None = None) -> list[DatumRow]:
        return [r for r in self.rows if r.pipeline == pipeline and status in (None, r.status)]

    def frame(self) -> Any:
        """The rows as a pandas DataFrame."""
        import pandas as pd

        columns = list(DatumRow.__dataclass_fields__)
        return pd.DataFrame([[getattr(r, c) for c in columns] for r in self.rows], columns=columns)

    def summary(self) -> str:
        return "; ".join(
            f"{p}: " + ", ".join(f"{n} {s}" for s, n in sorted(c.items()))
            for p, c in self.counts().items()
        )


@dataclass(frozen=True, slots=True)
class SpecRunResult(SpecPlan):
    """What ``run_specs`` did; ``ok`` is False when any datum failed."""

    run_id: str = ""

    @property
    def ok(self) -> bool:
        return not any(r.status == "failed" for r in self.rows)


def plan_specs(
    folder_or_specs: str | os.PathLike[str] | Sequence[Spec],
    *,
    store: Store | str,
    catalog: Catalog | str | None = None,
) -> SpecPlan:
    """Per pipeline, its datums as new / changed / cached / waiting / removed, with reasons."""
    store = Store.from_url(store)
    own = not isinstance(catalog, Catalog)
    cat = Catalog.coerce(catalog)
    try:
        rows: list[DatumRow] = []
        unsettled: dict[str, list[Datum]] = {}
        specs, project = _ordered(folder_or_specs, store)
        for spec in specs:
            states, removed = _Planner(spec, store, cat, unsettled, project).classify()
            unsettled[spec.pipeline] = [s.datum for s in states if s.status in _UNSETTLED]
            rows += [s.row() for s in states] + removed
        return SpecPlan(tuple(rows))
    finally:
        if own:
            cat.close()


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
    specs, project = _ordered(folder_or_specs, store)  # bad specs fail before anything opens
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
            planner = _Planner(spec, store, cat, unsettled, project)
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


def _ordered(
    source: str | os.PathLike[str] | Sequence[Spec], store: Store
) -> tuple[list[Spec], Path]:
    """Specs in dependency order, and the project folder (commands run there)."""
    project = Path.cwd()
    if isinstance(source, str | os.PathLike):
        folder = Path(source)
        base = folder.parent if folder.is_file() else folder
        project = base.parent if base.name == "pipelines" else base
        if project.is_dir() and str(project.resolve()) not in sys.path:
            # Transforms name modules of the project (``steps:measure``); appended, so a
            # project file never shadows an installed module.
            sys.path.append(str(project.resolve()))
        specs = load_specs(folder)
    else:
        specs = list(source)
    return spec_order(specs, store), project.resolve()


# --- planning -------------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    """One datum while the driver plans and runs it."""

    pipeline: str
    datum: Datum
    key: str
    status: str
    reason: str = ""
    seconds: float | None = None
    outputs: tuple[str, ...] = ()
    error: str = ""
    attempts: int = 0
    slot: str = ""
    """The datum's identity across runs: its group key for groups (whose members change)."""
    had_row: bool = False
    """The catalog held a completed call with this key when the datum was planned."""
    restore: list[tuple[str, str]] = field(default_factory=list)
    """(attic path, output path) of a cached datum whose outputs were put aside on removal."""

    def row(self) -> DatumRow:
        return DatumRow(
            self.pipeline, self.datum.id, self.key, self.status, self.reason, self.seconds,
            self.outputs, self.error, dict(self.datum.attributes),
        )  # fmt: skip


class _Planner:
    """Classifies one pipeline's datums from listings, the stat cache and batched lookups."""

    def __init__(
        self,
        spec: Spec,
        store: Store,
        catalog: Catalog,
        unsettled: Mapping[str, list[Datum]],
        project: Path,
    ) -> None:
        self.spec, self.store, self.catalog = spec, store, catalog
        self.unsettled, self.project = unsettled, project
        self.function, self.fingerprint = transform_identity(spec, project)
        self.output_infos: dict[str, FileInfo] = {}
        self.before: dict[str, tuple[str, list[str]]] = {}
        self.tracked: dict[str, tuple[str, str]] = {}
        """Output path -> (hash, stamp) the catalog recorded for the file there now."""

    def classify(self) -> tuple[list[_State], list[DatumRow]]:
        spec, name = self.spec, self.spec.pipeline
        datums = match_datums(spec, self.store, hashes=self._hashes)
        keys = [datum_key(self.fingerprint, d, spec.key_by) for d in datums]
        prefix = name + "/"
        self.output_infos = {i.path: i for i in self.store.list(name)}
        previous = [
            a for a in self.catalog.artifacts(self.store.url, prefix) if a.path in self.output_infos
        ]
        found = self.catalog.lookup({*keys, *(a.key for a in previous if a.key)})
        # slot -> its call's key and outputs now in the repo, from the catalog's rows
        before: dict[str, tuple[str, list[str]]] = {}
        for art in previous:
            row = found.get(art.key or "")
            if row is not None and "slot" in row.params:
                entry = before.setdefault(row.params["slot"], (row.key, []))
                entry[1].append(art.path[len(prefix) :])
        unknown = [k for k in keys if k not in found]
        failed = self.catalog.last_failures(unknown) if unknown else {}
        states: list[_State] = []
        first_of: dict[str, str] = {}
        for datum, key in zip(datums, keys, strict=True):
            state = _State(name, datum, key, "new", slot=self.slot(datum))
            states.append(state)
            waiting = self._waiting(datum)
            if waiting:
                state.status, state.reason = "waiting", waiting
                continue
            if key in first_of:
                state.status, state.reason = "cached", f"identical to datum {first_of[key]}"
                continue
            first_of[key] = datum.id
            row = found.get(key)
            state.had_row = row is not None
            problem = self._output_problem(row) if row is not None else "new input"
            if row is not None and problem:
                state.restore = self._restorable(row)
                problem = "" if state.restore else problem
                state.reason = "outputs restored (computed before)" if state.restore else ""
            if row is not None and not problem:
                state.status = "cached"
                state.outputs = tuple(a.path[len(prefix) :] for a in row.outputs.values())
                continue
            old = before.get(state.slot)
            if key in failed:
                state.status, state.reason = "changed" if old else "new", "previously failed"
            elif row is not None:
                state.status, state.reason = "changed", problem
            elif old is not None:
                old_row = found.get(old[0])
                same_code = old_row is not None and old_row.fingerprint == self.fingerprint
                state.status = "changed"
                state.reason = "input changed" if same_code else "code changed"
            else:
                state.reason = "new input"
        present = {s.slot for s in states}
        removed = [
            DatumRow(
                name,
                found[k].params.get("datum", d),
                k,
                "removed",
                "inputs disappeared",
                outputs=tuple(sorted(paths)),
                attributes=dict(found[k].params.get("attributes") or {}),
            )
            for d, (k, paths) in sorted(before.items())
            if d not in present
        ]
        self.before = before
        self.tracked = {a.path: (a.hash, a.stamp) for a in previous}
        return states, removed

    def slot(self, datum: Datum) -> str:
        if self.spec.input.kind == "group" and datum.group is not None:
            return f"group:{datum.group}"
        return datum.id

    def _output_problem(self, row: Any) -> str:
        for art in row.outputs.values():
            if art.store and art.store != self.store.url:
                return "output missing"
            info = self.output_infos.get(art.path)
            if info is None:
                with_info = self.store.infos([art.path]).get(art.path)
                if with_info is None:
                    return "output missing"
                info = with_info
            if info.size != art.size:
                return "output modified"
            if info.stamp != art.stamp and self.store.hash(art.path) != art.hash:
                return "output modified"
        return ""

    def _restorable(self, row: Any) -> list[tuple[str, str]]:
        """Outputs computed before come back from the attic when their key comes back (files
        removed and re-added, a reducer's group back to an earlier state)."""
        moves = []
        for art in row.outputs.values():
            info = self.output_infos.get(art.path)
            if info is None or info.size != art.size or info.stamp != art.stamp:
                moves.append((attic_path(self.spec.pipeline, art.hash), art.path))
        found = self.store.infos([src for src, _dst in moves]) if moves else {}
        return moves if all(found.get(src) is not None for src, _dst in moves) else []

    def stash(self, path: str, *, move: bool) -> bool:
        """Put the recorded output at ``path`` aside by content (moved, or linked/copied when
        it stays); False when the file there is not the one the catalog recorded."""
        tracked = self.tracked.get(path)
        info = self.output_infos.get(path)
        if tracked is None or info is None or info.stamp != tracked[1]:
            return False
        target = attic_path(self.spec.pipeline, tracked[0])
        return _move(self.store, path, target) if move else _copy(self.store, path, target)

    def _waiting(self, datum: Datum) -> str:
        if self.spec.input.kind != "group":
            return ""
        ok, why = is_complete(datum, self.spec, self.store)
        if not ok:
            return f"waiting: group {datum.group} incomplete ({why})"
        repos = {f.repo for f in datum.files}
        for repo in sorted(repos & set(self.unsettled)):
            pending = [u for u in self.unsettled[repo] if _related(datum.group, u)]
            if pending:
                return (
                    f"waiting: {len(pending)} datum(s) of '{repo}' in group {datum.group} not done"
                )
        return ""

    def _hashes(self, infos: Sequence[FileInfo]) -> dict[str, str]:
        known = self.catalog.stat_cache_get(self.store.url, [i.path for i in infos])
        out: dict[str, str] = {}
        fresh = []
        now = time.time_ns()
        for info in infos:
            hit = known.get(info.path)
            if hit is not None and hit[0] == info.stamp:
                out[info.path] = hit[1]
                continue
            try:
                digest = self.store.hash(info.path)
            except ArtifactNotFound:
                continue  # vanished since the listing: match_datums leaves its datums
            out[info.path] = digest
            if info.mtime_ns is None or now - info.mtime_ns > YOUNG_NS:
                fresh.append((info.path, info.stamp, info.size, digest))
        if fresh:
            self.catalog.stat_cache_put(self.store.url, fresh)
        return out

    def task(self, state: _State) -> DatumTask:
        t = self.spec.transform
        out = self.spec.output
        fmt = {"name": out.format, **out.options} if out.format else None
        return DatumTask(
            key=state.key,
            pipeline=self.spec.pipeline,
            datum=state.datum.id,
            files=tuple((f.store_path, f.layout_path) for f in state.datum.files),
            values=placeholder_values(self.spec, state.datum),
            function=self.function,
            cmd=tuple(t.cmd or ()),
            stdin=tuple(t.stdin or ()),
            env=dict(t.env),
            accept_return_code=tuple(t.accept_return_code),
            output_format=fmt,
            output_target=out.target,
            cwd=str(self.project),
        )


def _related(group: str | None, upstream: Datum) -> bool:
    """Whether an upstream datum belongs to a downstream group key (plate1 ~ plate1/A01_s1)."""
    if not group:
        return True
    names = [upstream.group or "", *upstream.attributes.values()]
    names += [f.path for f in upstream.files]
    return any(n == group or n.startswith(group + "/") for n in names)


# --- execution ------------------------------------------------------------------------------


class _Execution:
    """Leases, submits and records one pipeline's datums that need to run."""

    def __init__(
        self,
        planner: _Planner,
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

    def run(self, states: list[_State]) -> None:
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

    def _lease(self, todo: list[_State]) -> list[_State]:
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

    def _restore(self, states: list[_State]) -> None:
        restamped = []
        for s in states:
            if not s.restore:
                continue
            for _src, dst in s.restore:
                self.planner.stash(dst, move=True)  # what is there now may come back later
            if not all(_move(self.store, src, dst) for src, dst in s.restore):
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

    def _submit_all(self, states: list[_State]) -> dict[cf.Future[Any], _State]:
        """Many short datums go in chunks, one executor task each (DESIGN section 6)."""
        workers = max(1, getattr(self.pool, "max_workers", 1) or 1)
        size = min(BATCH, len(states) // (4 * workers))
        if size < 2:
            return {self._submit(s): s for s in states}
        futures: dict[cf.Future[Any], _State] = {}
        for start in range(0, len(states), size):
            chunk = states[start : start + size]
            for state in chunk:
                state.attempts += 1
                self.progress(CallEvent(state.pipeline, state.key, "running"))
            args = [(self.planner.task(s), self.store) for s in chunk]
            batch = self.pool.submit_batch(run_task, args)
            futures.update(zip(split_batch(batch, len(chunk)), chunk, strict=True))
        return futures

    def _submit(self, state: _State) -> cf.Future[Any]:
        state.attempts += 1
        self.progress(CallEvent(state.pipeline, state.key, "running"))
        return self.pool.submit(run_task, self.planner.task(state), self.store)

    def _claims(self, states: list[_State]) -> dict[str, str]:
        """Output path -> slot, for outputs of datums that are still present."""
        present = {s.slot for s in states}
        return {
            path: datum
            for datum, (_key, paths) in self.planner.before.items()
            if datum in present
            for path in paths
        }

    def _check_collisions(
        self, outcome: DatumOutcome, state: _State, claimed: dict[str, str]
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

    def _record(self, state: _State, outcome: DatumOutcome) -> CallRecord:
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

    def _drop_stale(self, states: Iterable[_State]) -> None:
        """A re-run datum's earlier outputs that it no longer writes leave the repo."""
        for s in states:
            if s.status != "ran" or s.slot not in self.planner.before:
                continue
            for path in set(self.planner.before[s.slot][1]) - set(s.outputs):
                self.store.delete(f"{s.pipeline}/{path}")


def attic_path(pipeline: str, digest: str) -> str:
    """Where a removed datum's output waits (by content) in case its inputs come back.

    It lies in the object area, so ``gc`` frees it: nothing references it in the catalog.
    """
    return f"{OBJECTS}/removed/{pipeline}/{digest}"


def _move(store: Store, src: str, dst: str) -> bool:
    """Move a file inside the store (a rename locally); False when it cannot."""
    try:
        if store.is_local:
            target = store.local_path(dst)
            assert target is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(store.full_path(src), target)
        else:
            store.fs.mv(store.full_path(src), store.full_path(dst))
    except (OSError, DatabackedError):
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _copy(store: Store, src: str, dst: str) -> bool:
    """Copy a file inside the store (a hard link locally); False when it cannot."""
    try:
        if store.exists(dst):
            return True
        if store.is_local:
            source, target = store.local_path(src), store.local_path(dst)
            assert source is not None and target is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)  # writes replace files by rename: the link keeps them
            except OSError:
                shutil.copyfile(source, target)
        else:
            store.fs.copy(store.full_path(src), store.full_path(dst))
    except (OSError, DatabackedError):
        return False
    return True


def _outcome(future: cf.Future[Any], key: str) -> DatumOutcome:
    try:
        return future.result()
    except Exception as exc:  # the executor lost the task (dead worker, cluster gone)
        return DatumOutcome(key, "failed", error_type=type(exc).__name__, error_message=str(exc))


__all__ = ["DatumRow", "SpecPlan", "SpecRunResult", "plan_specs", "run_specs", "run_task"]
