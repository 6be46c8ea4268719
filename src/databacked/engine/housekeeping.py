"""Housekeeping over a store and its catalog: verify, gc, forget.

``verify`` re-hashes every artifact the catalog knows in a store and reports the corrupt and
the missing ones; with ``repair=True`` it first undoes folder writes that were killed half-way
(the previous local version put back, a half-copied object-store folder removed) and then
forgets the calls whose outputs are corrupt or missing, so the next run recomputes them.
``gc`` removes files in the store's object area that no catalog row references, whole call
logs (``.databacked/logs/``) of calls the catalog no longer holds, plus staging leftovers of
killed runs, but never a file a call holding a live lease may have written.
``forget`` drops cache entries so their calls compute again. The CLI's ``verify``, ``gc`` and
``forget`` commands are thin wrappers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from databacked.errors import ArtifactNotFound, ConfigError
from databacked.store import STAGING_PREFIX, interrupted, repair_folder
from databacked.store.folders import OLD_PREFIX, WRITING_PREFIX

if TYPE_CHECKING:
    from databacked.catalog import Catalog
    from databacked.store import FileInfo, Store

OBJECTS = ".databacked/objects/"
"""Where outputs without a target live; gc removes unreferenced files here by default."""
LOGS = ".databacked/logs/"
"""Whole call logs, ``<key>.log``; gc removes those of keys the catalog does not hold."""
UNKNOWN_LOG = "log of a call the catalog does not hold"
"""Why gc removes a log (``GcReport.details``)."""
STAGING_AGE = 3600.0
"""Seconds after which a staging leftover belongs to a dead writer, not a running one."""
CLOCK_SLACK = 300.0
"""Seconds of clock difference between hosts that gc allows for when it spares the files
written since the oldest live lease was taken."""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``verify`` found: every artifact checked, the ones whose bytes are not right."""

    checked: int = 0
    """Artifacts re-hashed or found missing."""
    corrupt: tuple[str, ...] = ()
    """Paths whose content hash differs from the recorded one."""
    missing: tuple[str, ...] = ()
    """Paths the catalog knows but the store no longer holds."""
    repaired: tuple[str, ...] = ()
    """With ``repair``: ``"path: what was done"`` for each repair."""

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing


@dataclass(frozen=True, slots=True)
class GcReport:
    """What ``gc`` removed (or, with ``dry_run``, would remove)."""

    removed: tuple[str, ...] = ()
    """Store paths removed: files, or staging folders as one entry."""
    bytes_freed: int = 0
    """Sum of the sizes of the removed files."""
    dry_run: bool = False
    """True when nothing was actually deleted."""
    kept: int = 0
    """Files looked at and kept because the catalog references them."""
    details: dict[str, str] = field(default_factory=dict)
    """Path -> why it goes: ``unreferenced``, ``staging leftover`` or :data:`UNKNOWN_LOG`."""

    log_bytes: int = 0
    """The part of ``bytes_freed`` that call logs take."""

    @property
    def logs(self) -> int:
        """How many of the removed paths are call logs."""
        return sum(1 for why in self.details.values() if why == UNKNOWN_LOG)


def verify(
    store: Store,
    catalog: Catalog,
    *,
    prefix: str = "",
    threads: int = 8,
    progress: Callable[[str], None] | None = None,
    repair: bool = False,
) -> VerifyReport:
    """Re-hash every artifact the catalog holds for ``store`` (under ``prefix``).

    Hashing is spread over a few threads: blake3 releases the GIL and small files are
    dominated by I/O latency, especially on object stores. ``repair`` first undoes killed
    folder swaps, then forgets the calls of corrupt or missing outputs (they run again).
    """
    repaired = [f"{p}: {what}" for p, what in _repair_folders(store, prefix)] if repair else []
    rows = catalog.artifacts(store.url, prefix or None)
    wanted = {row.path: row.hash for row in rows}
    corrupt: list[str] = []
    missing: list[str] = []

    def check(path: str) -> tuple[str, str | None]:
        try:
            return path, store.hash(path)
        except (ArtifactNotFound, FileNotFoundError):
            return path, None

    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="databacked-verify") as pool:
        for path, digest in pool.map(check, sorted(wanted)):
            if digest is None:
                missing.append(path)
            elif digest != wanted[path]:
                corrupt.append(path)
            if progress is not None:
                progress(path)
    if repair:
        keys = {row.path: row.key for row in rows if row.key}
        for path in [*corrupt, *missing]:
            key = keys.get(path)
            if key and catalog.forget(key=key):
                repaired.append(f"{path}: forgot its call, so the next run computes it again")
    return VerifyReport(
        checked=len(wanted),
        corrupt=tuple(corrupt),
        missing=tuple(missing),
        repaired=tuple(repaired),
    )


def _repair_folders(store: Store, prefix: str) -> list[tuple[str, str]]:
    """Undo folder swaps that a kill interrupted (one listing of the store)."""
    done = []
    for path in interrupted(store, prefix):
        what = repair_folder(store, path)
        if what is not None:
            done.append((path, what))
    return done


def gc(
    store: Store,
    catalog: Catalog,
    *,
    dry_run: bool = False,
    everywhere: bool = False,
    staging_age: float = STAGING_AGE,
    now: float | None = None,
) -> GcReport:
    """Remove unreferenced files from the object area, logs of calls the catalog does not
    hold (forgotten, or never recorded), and staging leftovers of killed runs.

    With ``everywhere=True`` any file in the store that no catalog row references goes,
    not only those under ``.databacked/objects/`` (inputs the catalog never recorded too).
    A file that a call holding a live lease may have written (its key in the path, or
    written since the oldest live lease was taken) is kept: its row is not committed yet.
    Folder writes killed half-way are repaired first (or, dry, reported), never collected.
    """
    if not dry_run:
        _repair_folders(store, "")
    referenced = catalog.referenced_paths(store.url)
    clock = time.time() if now is None else now
    cutoff = clock - staging_age
    live = catalog.live_leases()
    leased_keys = {lease.key for lease in live}
    busy_since = min((lease.acquired for lease in live), default=None)
    doomed: dict[str, int] = {}
    why: dict[str, str] = {}
    logs: dict[str, FileInfo] = {}
    kept = 0
    for info in store.list(""):
        if any(p.startswith((OLD_PREFIX, WRITING_PREFIX)) for p in info.path.split("/")):
            continue  # an interrupted folder write: verify --repair (or gc) puts it right
        staging = _staging_root(info.path)
        if staging is not None:
            if _older(info, cutoff) and why.get(staging) != "recent":
                doomed[staging] = doomed.get(staging, 0) + info.size
                why[staging] = "staging leftover"
            else:
                # One recent file keeps its whole staging folder: a writer may still be busy.
                doomed.pop(staging, None)
                why[staging] = "recent"
            continue
        if info.path.startswith(LOGS) and info.path.endswith(".log"):
            logs[info.path[len(LOGS) : -len(".log")]] = info
            continue
        in_objects = info.path.startswith(OBJECTS)
        # Our own bookkeeping (a catalog file kept in the store, say) is never garbage.
        if not in_objects and (not everywhere or info.path.startswith(".databacked/")):
            continue
        if _is_referenced(info.path, referenced) or _leased(info, leased_keys, busy_since):
            kept += 1
            continue
        doomed[info.path] = info.size
        why[info.path] = "unreferenced"
    known = catalog.known_keys(logs) if logs else set()
    for key, info in logs.items():
        if key not in known and not _leased(info, leased_keys, busy_since):
            doomed[info.path] = info.size
            why[info.path] = UNKNOWN_LOG
    removed = tuple(sorted(doomed))
    if not dry_run:
        for path in removed:
            store.delete(path)
    return GcReport(
        removed=removed,
        bytes_freed=sum(doomed.values()),
        dry_run=dry_run,
        kept=kept,
        details={path: why[path] for path in removed},
        log_bytes=sum(size for path, size in doomed.items() if why[path] == UNKNOWN_LOG),
    )


def forget(
    catalog: Catalog,
    *,
    step: str | None = None,
    key: str | None = None,
    older_than: str | float | timedelta | None = None,
) -> int:
    """Drop completed calls matching every given filter, so they compute again; the count.

    ``older_than`` is seconds, a ``timedelta`` or text such as ``"7d"``, ``"12h"``, ``"30m"``.
    """
    check_forget_filters(step, key, older_than)
    # The catalog reads a float as a point in time; an age travels as a timedelta.
    age = None if older_than is None else timedelta(seconds=parse_age(older_than))
    return catalog.forget(step=step, key=key, older_than=age)


def check_forget_filters(
    step: str | None, key: str | None, older_than: str | float | timedelta | None
) -> None:
    """Refuse a forget without any filter, which would drop the whole cache."""
    if step is None and key is None and older_than is None:
        raise ConfigError(
            "forget needs a step name, a key or an age (--older-than 7d); "
            "it refuses to drop the whole cache without one."
        )
    if older_than is not None:
        parse_age(older_than)  # a bad age fails before any query


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(value: str | float | timedelta) -> float:
    """Seconds in an age: ``"7d"`` -> 604800.0; numbers are seconds already.

    >>> parse_age("36h")
    129600.0
    """
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float):
        return float(value)
    match = _AGE.match(value)
    if match is None:
        raise ConfigError(
            f"Cannot read the age {value!r}: write a number and a unit, such as 30m, 12h, 7d or 2w."
        )
    return float(match[1]) * _UNIT[match[2].lower()]


def _staging_root(path: str) -> str | None:
    """The staging file or folder a path belongs to, if any part of it is a staging name."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if part.startswith(STAGING_PREFIX):
            return "/".join(parts[: i + 1])
    return None


def _older(info: FileInfo, cutoff: float) -> bool:
    # Object stores may not report a time: such a leftover is treated as old, since
    # nothing stages there for long (writes are a single PUT or a multipart upload).
    return info.mtime_ns is None or info.mtime_ns / 1e9 < cutoff


def _leased(info: FileInfo, keys: set[str], busy_since: float | None) -> bool:
    """May a call that holds a live lease have written this file (not yet recorded)?"""
    if busy_since is None:
        return False
    if info.path.rpartition("/")[2].partition(".")[0] in keys:  # objects/<step>/<key>.<ext>
        return True
    return info.mtime_ns is None or info.mtime_ns / 1e9 >= busy_since - CLOCK_SLACK


def _is_referenced(path: str, referenced: Iterable[str] | set[str]) -> bool:
    """A file is kept if it, or a folder holding it (an OME-Zarr artifact), is referenced."""
    refs = referenced if isinstance(referenced, set) else set(referenced)
    if path in refs:
        return True
    parts = path.split("/")
    return any("/".join(parts[:i]) in refs for i in range(1, len(parts)))


__all__ = [
    "GcReport",
    "VerifyReport",
    "check_forget_filters",
    "forget",
    "gc",
    "parse_age",
    "verify",
]
