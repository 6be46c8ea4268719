"""What every route of the UI shares: the source, the thumbnail cache, and a few helpers."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from fastapi import HTTPException, Request

from databacked.errors import CatalogError
from databacked.ui import artifact_queries, queries
from databacked.ui.content import Located, NotServable, locate
from databacked.ui.images import ThumbnailCache
from databacked.ui.source import Source

T = TypeVar("T")
_HEX = re.compile(r"^[0-9a-f]{6,64}$")
_RUN = re.compile(r"^[0-9a-zA-Z]{1,64}$")
COUNT_CACHE = 20_000


@dataclass
class UiState:
    """The app's state: ``request.app.state.ui``."""

    source: Source
    thumbnails: ThumbnailCache = field(default_factory=ThumbnailCache)
    graphviz: bool = True
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished_counts: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    """Per-step counts of finished runs: they do not change, and a 100,000-call run costs a
    full scan of its calls to count."""

    finished_hist: OrderedDict[str, dict[str, list[int]]] = field(default_factory=OrderedDict)

    def histogram(
        self, conn: sa.Connection, run: dict[str, Any], t0: float, span: float
    ) -> dict[str, list[int]]:
        """Calls started per step and time slice (the run page's timeline), cached once done."""
        found = self.finished_hist.get(run["id"])
        if found is None:
            found = queries.step_histogram(conn, run["id"], t0, span)
            if run["status"] != "running":
                self.finished_hist[run["id"]] = found
                while len(self.finished_hist) > COUNT_CACHE // 10:
                    self.finished_hist.popitem(last=False)
        return found

    def steps(
        self,
        conn: sa.Connection,
        runs: list[dict[str, Any]],
        *,
        cached_only: bool = False,
        lazy_above: int | None = None,
    ) -> None:
        """Set ``run["steps"]`` (per-step counts, first/last times) on each run dict.

        ``cached_only``: leave ``None`` where the counts are not cached (the page then fetches
        them after its first paint, as Dagster defers step stats); ``lazy_above``: the same
        for runs whose summary counts more calls than that.
        """
        lazy = [
            r
            for r in runs
            if r["id"] not in self.finished_counts
            and (cached_only or (lazy_above is not None and sum(r["totals"].values()) > lazy_above))
        ]
        for run in lazy:
            run["steps"] = None
        runs = [r for r in runs if r not in lazy]
        missing = [r["id"] for r in runs if r["id"] not in self.finished_counts]
        fresh = queries.step_counts(conn, missing)
        for run in runs:
            if run["id"] in self.finished_counts:
                counts = self.finished_counts[run["id"]]
            else:
                counts = fresh[run["id"]]
                if run["status"] != "running":
                    self.finished_counts[run["id"]] = counts
                while len(self.finished_counts) > COUNT_CACHE:
                    self.finished_counts.popitem(last=False)
            run["steps"] = _step_list(_with_cached(counts, run.get("summary_steps") or {}))

    def read(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in one read transaction; database errors become a 503."""
        try:
            with self.source.catalog.engine.connect() as conn, conn.begin():
                return fn(conn)
        except sa.exc.SQLAlchemyError as exc:
            raise HTTPException(
                503, f"The catalog {self.source.catalog.url_redacted} cannot be read now."
            ) from CatalogError(str(exc))


def _with_cached(counts: dict[str, Any], summary_steps: dict[str, Any]) -> dict[str, Any]:
    """Add the calls found cached, which only the run's summary counts, to each step."""
    merged = {step: {**v, "counts": dict(v["counts"])} for step, v in counts.items()}
    for step, by_status in summary_steps.items():
        cached = by_status.get("cached", 0) if isinstance(by_status, dict) else 0
        if cached:
            entry = merged.setdefault(
                step, {"counts": {}, "first": None, "last": None, "busy": 0.0}
            )
            entry["counts"]["cached"] = int(cached)
    return merged


def _step_list(counts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"step": step, **values} for step, values in counts.items()]


def ui(request: Request) -> UiState:
    return request.app.state.ui


def not_found(what: str) -> HTTPException:
    return HTTPException(404, f"No {what} with that id in this catalog.")


def full_hash(state: UiState, digest: str) -> str:
    """A known content hash from a hash or a unique prefix; 404 for anything else."""
    if not _HEX.match(digest):
        raise not_found("artifact")
    if len(digest) == 64:
        return digest
    found = state.read(lambda c: artifact_queries.resolve_hash(c, digest))
    if found is None:
        raise not_found("artifact")
    return found


def full_key(state: UiState, key: str) -> str:
    if not _HEX.match(key):
        raise not_found("call")
    found = key if len(key) == 64 else state.read(lambda c: queries.resolve_key(c, key))
    if found is None:
        raise not_found("call")
    return found


def run_id_or_404(run_id: str) -> str:
    if not _RUN.match(run_id):
        raise not_found("run")
    return run_id


def artifact_or_404(state: UiState, digest: str) -> dict[str, Any]:
    digest = full_hash(state, digest)
    record = state.read(lambda c: artifact_queries.find_artifact(c, digest))
    if record is None:
        raise not_found("artifact")
    return record


def located_or_404(state: UiState, record: dict[str, Any]) -> Located:
    try:
        return locate(state.source, record)
    except NotServable as exc:
        raise HTTPException(404, str(exc)) from exc


__all__ = [
    "UiState",
    "artifact_or_404",
    "full_hash",
    "full_key",
    "located_or_404",
    "not_found",
    "run_id_or_404",
    "ui",
]
