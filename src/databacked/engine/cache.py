"""Cache hits and the reason a call runs: decided from the catalog and ``stat`` alone.

A hit needs a completed call with the key whose outputs exist in this store with the
recorded size and stamp; a moved stamp means re-hashing before trusting (always, with
``verify``), and so does an output recorded in another store: a store copied or moved
elsewhere keeps its results once their bytes are found intact, and they are recorded as
this store's from then on. A call that runs is compared with the latest call that wrote its
target.
"""

from __future__ import annotations

import os
from dataclasses import replace
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
    found = catalog.lookup([s.key for s in cacheable], brief=True) if cacheable else {}
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
        problem = _output_problem(row, infos, store, verify, catalog)
        moved = {
            name: a
            for name, a in row.outputs.items()
            if not problem and (infos[a.path].stamp != a.stamp or _elsewhere(a, store))
        }
        if moved:
            restamped.append(_restamped(state, store.url, moved, infos))
        if problem:
            state.status, state.reason = "run", problem
        else:
            state.status, state.reason = "cached", ""
            # catalog rows carry what dependants and Artifacts need (path, hash, format...)
            state.records = {
                name: replace(a, store=store.url) if _elsewhere(a, store) else a
                for name, a in row.outputs.items()
            }
    if refresh and restamped:
        # calls are insert-or-ignore, artifacts upserts: only the stamps change
        catalog.record_calls(restamped)
    if need_history:
        _reasons(need_history, store, catalog)


def _restamped(state: CallState, store_url: str, moved: dict[str, Any], infos: dict) -> Any:
    from databacked.catalog.records import CallRecord

    outputs = {name: to_record(a, stamp=infos[a.path].stamp) for name, a in moved.items()}
    return CallRecord(key=state.key, step=state.step.name, store=store_url, outputs=outputs)


def _output_problem(
    row: Any, infos: dict[str, Any], store: Any, verify: bool, catalog: Any = None
) -> str:
    for artifact in row.outputs.values():
        info = infos.get(artifact.path)
        if info is None:
            return "output missing"
        # A moved stamp (touched, copied back), or an output recorded in another store (this
        # store is a copy or a move of it: a folder renamed, uploaded to a bucket): trust the
        # bytes only after re-hashing them.
        elsewhere = _elsewhere(artifact, store)
        rehash = verify or elsewhere or info.stamp != artifact.stamp
        if info.size != artifact.size or (rehash and store.hash(artifact.path) != artifact.hash):
            if elsewhere:
                return "output missing"  # not the bytes computed into the other store
            return _rewritten(row, artifact, info, catalog, store.url) or "output modified"
    return ""


def _elsewhere(artifact: Any, store: Any) -> bool:
    """Whether the catalog recorded this output in another store than this one."""
    return bool(artifact.store) and artifact.store != store.url


def _rewritten(row: Any, artifact: Any, info: Any, catalog: Any, store_url: str) -> str:
    """Why the bytes differ when the catalog explains it: another call wrote them since."""
    if catalog is None:
        return ""
    latest = catalog.artifact_by_path(artifact.store or store_url, artifact.path)
    if latest is None or not latest.key or latest.key == row.key:
        return ""
    if latest.size != info.size or latest.stamp != info.stamp:
        return ""  # not those bytes either: modified outside databacked
    other = catalog.lookup([latest.key]).get(latest.key)
    step = f" of {other.step}" if other is not None else ""
    return f"output rewritten since by another call{step} ({latest.key[:12]})"


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
    changed = [s for s in states if not s.reason and id(s) in previous]
    old_inputs = catalog.inputs_of({previous[id(s)] for s in changed}) if changed else {}
    for state in states:
        if state.reason:
            continue
        old = prior.get(previous.get(id(state), ""))
        if old is None:
            # a file the catalog knows, from a call no longer cached: `forget` dropped it
            state.reason = "cache entry forgotten" if id(state) in previous else "new"
        elif old.fingerprint != state.step.fingerprint:
            state.reason = "code changed"
        elif old.params_hash != state.params_hash:
            state.reason = "parameters changed"
        else:
            what = "upstream changed" if state.upstream_ran else "input changed"
            which = _changed_inputs(state, old_inputs.get(old.key, {}))
            state.reason = f"{what}: {which}" if which else what


def _changed_inputs(state: CallState, before: dict[str, list[Any]]) -> str:
    """``fov = raw/fov3.ome.tiff`` for the first input whose content differs (+N more)."""
    changed: list[str] = []
    for name, hashes in state.input_hashes.items():
        old = [ref.hash for ref in before.get(name, [])]
        if old == list(hashes):
            continue
        paths = _input_paths(state, name)
        if len(hashes) == 1:
            changed.append(f"{name} = {paths[0] if paths else '(a value)'}")
            continue
        moved = [i for i, h in enumerate(hashes) if i >= len(old) or old[i] != h]
        i = moved[0] if moved else 0
        where = paths[i] if i < len(paths) else "(a value)"
        changed.append(f"{name}[{i}] = {where}" if len(old) == len(hashes) else f"{name} (list)")
    if not changed:
        return ""
    more = f" (+{len(changed) - 1} more)" if len(changed) > 1 else ""
    return changed[0] + more


def _input_paths(state: CallState, name: str) -> list[str | None]:
    spec = state.inputs.get(name)
    if spec is not None:
        items = spec if isinstance(spec, tuple) else (spec,)
        return [s.path for s in items]
    value = state.params.get(name)
    if value is None:
        return [None]
    return [str(getattr(value, "uri", value))]  # an Artifact argument: where it lives


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
