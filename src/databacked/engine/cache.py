"""Cache hits and the reason a call runs: decided from the catalog and ``stat`` alone.

A hit needs a completed call with the key whose outputs exist in this store with the
recorded size and stamp; a moved stamp means re-hashing before trusting (always, with
``verify``). A call that runs is compared with the latest call that wrote its target.
"""

from __future__ import annotations

import os
from typing import Any

from databacked.engine.plan import CallState

MANY = 50
"""Beyond this many new calls, earlier versions of their targets are listed in one query."""


def classify(
    states: list[CallState], store: Any, catalog: Any, verify: bool, *, refresh: bool = True
) -> None:
    """Mark each keyed call ``cached`` or ``run`` with a reason (batched catalog + stat).

    With ``refresh``, outputs whose stamp moved but whose bytes re-hashed equal get their
    new stamp recorded, so the next no-op run trusts ``stat`` again instead of re-hashing.
    """
    cacheable = [s for s in states if s.step.cache and s.step.persist]
    found = catalog.lookup([s.key for s in cacheable]) if cacheable else {}
    paths = [a.path for s in cacheable if s.key in found for a in found[s.key].outputs.values()]
    infos = store.infos(paths) if paths else {}
    need_history: list[CallState] = []
    restamped: list[Any] = []
    for state in states:
        row = found.get(state.key)
        if row is None:
            state.status, state.reason = "run", ""
            need_history.append(state)
            continue
        problem = _output_problem(row, infos, store, verify)
        moved = {
            name: a
            for name, a in row.outputs.items()
            if not problem and infos[a.path].stamp != a.stamp
        }
        if moved:
            restamped.append(_restamped(state, store.url, moved, infos))
        if problem:
            state.status, state.reason = "run", problem
        else:
            state.status, state.reason = "cached", ""
            # catalog rows carry what dependants and Artifacts need (path, hash, format...)
            state.records = dict(row.outputs)
    if refresh and restamped:
        # calls are insert-or-ignore, artifacts upserts: only the stamps change
        catalog.record_calls(restamped)
    if need_history:
        _reasons(need_history, store, catalog)


def _restamped(state: CallState, store_url: str, moved: dict[str, Any], infos: dict) -> Any:
    from databacked.catalog.records import CallRecord

    outputs = {name: to_record(a, stamp=infos[a.path].stamp) for name, a in moved.items()}
    return CallRecord(key=state.key, step=state.step.name, store=store_url, outputs=outputs)


def _output_problem(row: Any, infos: dict[str, Any], store: Any, verify: bool) -> str:
    for artifact in row.outputs.values():
        if artifact.store and artifact.store != store.url:
            return "output missing"  # computed into another store: not here
        info = infos.get(artifact.path)
        if info is None:
            return "output missing"
        if info.size != artifact.size:
            return "output modified"
        # a moved stamp (touched, copied back): trust the bytes only after re-hashing
        rehash = verify or info.stamp != artifact.stamp
        if rehash and store.hash(artifact.path) != artifact.hash:
            return "output modified"
    return ""


def _reasons(states: list[CallState], store: Any, catalog: Any) -> None:
    failed = catalog.last_failures([s.key for s in states])
    paths = {id(s): next((p for p in s.targets.values() if p), None) for s in states}
    wanted = [p for p in paths.values() if p]
    if len(wanted) > MANY:
        # one listing under the targets' common folder instead of a query per target
        folder = os.path.commonpath([os.path.dirname(p) or "." for p in wanted])
        prefix = "" if folder in ("", ".") else folder + "/"
        rows = catalog.artifacts(store.url, prefix or None)
        known = {row.path: row.key for row in rows}
    else:
        known = {}
        for path in wanted:
            row = catalog.artifact_by_path(store.url, path)
            known[path] = row.key if row is not None else None
    previous: dict[int, str] = {}
    for state in states:
        if state.key in failed:
            state.reason = "previously failed"
            continue
        key = known.get(paths[id(state)] or "")
        if key:
            previous[id(state)] = key
    prior = catalog.lookup(set(previous.values())) if previous else {}
    for state in states:
        if state.reason:
            continue
        old = prior.get(previous.get(id(state), ""))
        if old is None:
            state.reason = "new"
        elif old.fingerprint != state.step.fingerprint:
            state.reason = "code changed"
        elif old.params_hash != state.params_hash:
            state.reason = "parameters changed"
        elif state.upstream_ran:
            state.reason = "upstream changed"
        else:
            state.reason = "input changed"


def to_record(artifact: Any, stamp: str | None = None) -> Any:
    """An ArtifactRecord from a catalog ArtifactRow (optionally with a newer stamp)."""
    from databacked.formats.base import ArtifactRecord

    return ArtifactRecord(
        path=artifact.path,
        hash=artifact.hash,
        size=artifact.size,
        format=artifact.format,
        stamp=artifact.stamp if stamp is None else stamp,
        metadata=dict(artifact.metadata or {}),
    )


__all__ = ["MANY", "classify", "to_record"]
