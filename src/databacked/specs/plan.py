"""Planning spec pipelines: which datums are new, changed, cached, waiting or removed, and why.

Per pipeline: match its datums (content hashes through the catalog's stat cache, so an
unchanged file is never read again), key them (``datum_key``), look the keys up in the
catalog in one batch, and classify each datum against the outputs now in its repo. A group
datum that reads another pipeline's repo waits while an upstream datum of its group failed or
waits in this run, or while the completeness its group declares is not met. ``plan_specs``
reports this; the runner (``specs.runner``) acts on the same classification.

Example::

    plan = plan_specs("pipelines/", store=Store("data"), catalog="sqlite:///c.db")
    print(plan.summary())
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from databacked.catalog import Catalog
from databacked.catalog.records import CallRecord
from databacked.errors import ArtifactNotFound
from databacked.hashing import RACY_NS
from databacked.specs import attic, containers
from databacked.specs.complete import is_complete
from databacked.specs.datums import Datum, datum_key, match_datums
from databacked.specs.graph import spec_order
from databacked.specs.identity import load_transform, transform_identity
from databacked.specs.loading import load_specs, project_folder
from databacked.specs.model import Spec
from databacked.specs.transform import DatumTask, placeholder_values
from databacked.store import FileInfo, Store

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
        specs, project = ordered_specs(folder_or_specs, store)
        for spec in specs:
            states, removed = Planner(spec, store, cat, unsettled, project).classify()
            unsettled[spec.pipeline] = [s.datum for s in states if s.status in _UNSETTLED]
            rows += [s.row() for s in states] + removed
        return SpecPlan(tuple(rows))
    finally:
        if own:
            cat.close()


def ordered_specs(
    source: str | os.PathLike[str] | Sequence[Spec], store: Store
) -> tuple[list[Spec], Path]:
    """Specs in dependency order, and the project folder (commands run there)."""
    project = Path.cwd()
    if isinstance(source, str | os.PathLike):
        folder = Path(source)
        project = project_folder(folder)
        if project.is_dir() and str(project.resolve()) not in sys.path:
            # Transforms name modules of the project (``steps:measure``); appended, so a
            # project file never shadows an installed module.
            sys.path.append(str(project.resolve()))
        specs = load_specs(folder)
    else:
        specs = list(source)
    return spec_order(specs, store), project.resolve()


@dataclass(slots=True)
class DatumState:
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


class Planner:
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
        self._function, self.fingerprint = transform_identity(spec, project, catalog)
        self.container = containers.for_spec(spec)  # the image digest is in the fingerprint
        self.output_infos: dict[str, FileInfo] = {}
        self.before: dict[str, tuple[str, list[str]]] = {}
        self.restamps: list[CallRecord] = []
        """Cached datums whose outputs are to be recorded anew (``_restamp``); a run does."""
        self.tracked: dict[str, tuple[str, str]] = {}
        """Output path -> (hash, stamp) the catalog recorded for the file there now."""

    @property
    def function(self) -> Callable[..., Any] | None:
        """The ``python:`` transform, imported when first needed (its fingerprint may be
        known without it: ``specs.identity``)."""
        if self._function is None and self.spec.transform.python is not None:
            self._function = load_transform(self.spec)
        return self._function

    def classify(self) -> tuple[list[DatumState], list[DatumRow]]:
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
        states: list[DatumState] = []
        first_of: dict[str, str] = {}
        for datum, key in zip(datums, keys, strict=True):
            state = DatumState(name, datum, key, "new", slot=self.slot(datum))
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
                if not state.restore:
                    self._restamp(row)
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
            # recorded in another store: this one is a copy or a move of it (a renamed
            # folder, an upload to a bucket), whose bytes are trusted once re-hashed
            elsewhere = bool(art.store) and art.store != self.store.url
            info = self.output_infos.get(art.path)
            if info is None:
                with_info = self.store.infos([art.path]).get(art.path)
                if with_info is None:
                    return "output missing"
                info = self.output_infos[art.path] = with_info
            rehash = elsewhere or info.stamp != art.stamp
            if info.size != art.size or (rehash and self.store.hash(art.path) != art.hash):
                return "output missing" if elsewhere else "output modified"
        return ""

    def _restamp(self, row: Any) -> None:
        """Outputs of a cached datum found intact under a new stamp, or in this store when
        recorded in another, are recorded as they are here: the next run trusts ``stat``."""
        moved = {
            name: replace(art, store=self.store.url, stamp=info.stamp)
            for name, art in row.outputs.items()
            if (info := self.output_infos.get(art.path)) is not None
            and (info.stamp != art.stamp or art.store != self.store.url)
        }
        if moved:
            here = self.store.url
            self.restamps.append(
                CallRecord(key=row.key, step=self.spec.pipeline, store=here, outputs=moved)
            )

    def _restorable(self, row: Any) -> list[tuple[str, str]]:
        """Outputs computed before come back from the attic when their key comes back (files
        removed and re-added, a reducer's group back to an earlier state)."""
        return attic.restorable(self.store, self.spec.pipeline, row, self.output_infos)

    def stash(self, path: str, *, move: bool) -> bool:
        """Put the recorded output at ``path`` aside by content (see ``attic.stash``)."""
        return attic.stash(
            self.store,
            self.spec.pipeline,
            path,
            self.tracked.get(path),
            self.output_infos.get(path),
            move=move,
        )

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
            if info.mtime_ns is None or now - info.mtime_ns > RACY_NS:
                fresh.append((info.path, info.stamp, info.size, digest))
        if fresh:
            self.catalog.stat_cache_put(self.store.url, fresh)
        return out

    def task(self, state: DatumState) -> DatumTask:
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
            container=self.container,
        )


def _related(group: str | None, upstream: Datum) -> bool:
    """Whether an upstream datum belongs to a downstream group key (plate1 ~ plate1/A01_s1)."""
    if not group:
        return True
    names = [upstream.group or "", *upstream.attributes.values()]
    names += [f.path for f in upstream.files]
    return any(n == group or n.startswith(group + "/") for n in names)


__all__ = ["DatumRow", "DatumState", "Planner", "SpecPlan", "ordered_specs", "plan_specs"]
