"""Finished calls left in the store by workers, so a kill loses only the calls in flight.

A worker writes one small JSON entry per finished call (``.databacked/journal/<key>.json``)
right after the call's outputs are written, before the driver hears of it. The driver
removes the entries once their calls are committed to the catalog. When a driver (or the
worker running a batch) is killed with SIGKILL, the entries of the calls that had finished
are still there: the next driver that leases those keys adopts them, after checking that
each output still has the size and stamp the worker saw, instead of computing them again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable
from typing import Any

from databacked.engine.worker import CallOutcome
from databacked.formats.base import ArtifactRecord

JOURNAL = ".databacked/journal"
"""Folder of the entries, relative to the store root."""

log = logging.getLogger("databacked.engine.journal")


def path_of(key: str) -> str:
    return f"{JOURNAL}/{key}.json"


def write(store: Any, outcome: Any) -> None:
    """Leave ``outcome`` (a finished call with outputs) in the store; never raises."""
    records = getattr(outcome, "records", None)
    if getattr(outcome, "status", "") != "ok" or not records:
        return
    entry = {
        "key": outcome.key,
        "records": {name: _as_dict(r) for name, r in records.items()},
        "started": outcome.started,
        "finished": outcome.finished,
        "host": getattr(outcome, "host", ""),
        "pid": outcome.pid,
        "stdout": outcome.stdout,
        "stderr": outcome.stderr,
    }
    data = json.dumps(entry).encode()
    try:
        local = store.local_path(path_of(outcome.key))
        if local is not None:
            # A plain write: a torn entry (killed mid-write) does not parse and is ignored.
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
        else:
            store.put_bytes(path_of(outcome.key), data)
    except Exception as exc:  # the journal is an optimisation: the call itself succeeded
        log.debug("could not journal call %s: %s", outcome.key[:12], exc)


def read(store: Any, keys: Iterable[str]) -> dict[str, CallOutcome]:
    """Entries for ``keys`` whose outputs are still as the worker left them."""
    paths = {path_of(k): k for k in keys}
    if not paths or not store.exists(JOURNAL):
        return {}
    found = {p: i for p, i in store.infos(list(paths)).items() if i is not None}
    outcomes: dict[str, CallOutcome] = {}
    for path in found:
        try:
            entry = json.loads(store.read_bytes(path))
            records = {n: ArtifactRecord.from_dict(r) for n, r in entry["records"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            continue  # torn or foreign entry: the call runs again
        outcomes[paths[path]] = CallOutcome(
            key=paths[path],
            status="ok",
            records=records,
            started=float(entry.get("started") or 0.0),
            finished=float(entry.get("finished") or 0.0),
            host=str(entry.get("host") or ""),
            pid=int(entry.get("pid") or 0),
            stdout=str(entry.get("stdout") or ""),
            stderr=str(entry.get("stderr") or ""),
        )
    outputs = [r.path for o in outcomes.values() for r in o.records.values()]
    infos = store.infos(outputs) if outputs else {}
    intact = {}
    for key, outcome in outcomes.items():
        if all(_same(infos.get(r.path), r) for r in outcome.records.values()):
            intact[key] = outcome
    return intact


def remove(store: Any, keys: Iterable[str]) -> None:
    """Drop the entries of calls now committed to the catalog."""
    keys = list(keys)
    if not keys:
        return
    root = store.local_path(JOURNAL)
    if root is not None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root / f"{key}.json")
        return
    present = [p for p, i in store.infos([path_of(k) for k in keys]).items() if i is not None]
    for path in present:
        store.delete(path)


def _as_dict(record: Any) -> dict[str, Any]:
    if hasattr(record, "to_dict"):
        return dict(record.to_dict())
    fields = ("path", "hash", "size", "format", "stamp", "metadata")
    return {f: getattr(record, f) for f in fields}


def _same(info: Any, record: ArtifactRecord) -> bool:
    return info is not None and info.size == record.size and info.stamp == record.stamp


__all__ = ["JOURNAL", "read", "remove", "write"]
