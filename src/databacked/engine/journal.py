"""Finished calls left in the store by workers, so a kill loses only the calls in flight.

A worker appends one JSON line per finished call to its file of the run
(``.databacked/journal/<run>/<pid>.jsonl``) right after the call's outputs are written,
before the driver hears of it. The driver removes the run's folder once everything it
finished is committed to the catalog. When a driver (or the
worker running a batch) is killed with SIGKILL, the entries of the calls that had finished
are still there: the next driver that leases those keys adopts them, after checking that
each output still has the size and stamp the worker saw, instead of computing them again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterable
from typing import Any

from databacked.engine.worker import CallOutcome
from databacked.formats.base import ArtifactRecord

JOURNAL = ".databacked/journal"
"""Folder of the entries, relative to the store root: one folder per driver run."""

log = logging.getLogger("databacked.engine.journal")
_files: dict[str, Any] = {}
"""Append handles of this process, by local path: one open per worker process and run."""


def new_id() -> str:
    """A run's journal folder name: host, driver pid (to tell dead runs) and a random part."""
    host = socket.gethostname().replace("/", "_").replace("-", "_")
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def write(store: Any, outcome: Any, run: str | None) -> None:
    """Leave ``outcome`` (a finished call with outputs) in the store; never raises.

    Locally, one line appended to this process's file of the run (no file created per
    call); on object stores, one small object per call.
    """
    records = getattr(outcome, "records", None)
    if not run or getattr(outcome, "status", "") != "ok" or not records:
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
    line = json.dumps(entry) + "\n"
    try:
        local = store.local_path(f"{JOURNAL}/{run}/{os.getpid()}.jsonl")
        if local is None:
            store.put_bytes(f"{JOURNAL}/{run}/{outcome.key}.json", line.encode())
            return
        handle = _files.get(str(local))
        if handle is None:
            local.parent.mkdir(parents=True, exist_ok=True)
            handle = _files[str(local)] = open(local, "a", encoding="utf-8")  # noqa: SIM115
        # A torn last line (killed mid-write) does not parse and is ignored.
        handle.write(line)
        handle.flush()
    except Exception as exc:  # the journal is an optimisation: the call itself succeeded
        log.debug("could not journal call %s: %s", outcome.key[:12], exc)


def read(store: Any, keys: Iterable[str], *, skip: str | None = None) -> dict[str, CallOutcome]:
    """Entries for ``keys`` (from runs other than ``skip``) whose outputs are as left."""
    wanted = set(keys)
    if not wanted or not store.exists(JOURNAL):
        return {}
    entries: dict[str, dict[str, Any]] = {}
    for info in store.list(JOURNAL):
        if skip and info.path.startswith(f"{JOURNAL}/{skip}/"):
            continue
        try:
            lines = store.read_bytes(info.path).decode("utf-8", "replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # torn: the call runs again
            if isinstance(entry, dict) and entry.get("key") in wanted:
                entries[entry["key"]] = entry
    outcomes: dict[str, CallOutcome] = {}
    for key, entry in entries.items():
        try:
            records = {n: ArtifactRecord.from_dict(r) for n, r in entry["records"].items()}
        except (KeyError, TypeError, ValueError):
            continue
        outcomes[key] = CallOutcome(
            key=key,
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
    return {
        key: outcome
        for key, outcome in outcomes.items()
        if all(_same(infos.get(r.path), r) for r in outcome.records.values())
    }


def forget(store: Any, run: str) -> None:
    """Drop a run's entries once everything it finished is committed to the catalog, and
    those of dead runs on this host (what they left was adopted, or runs again)."""
    for path in [p for p in _files if f"/{run}/" in p.replace(os.sep, "/")]:
        _files.pop(path).close()
    with contextlib.suppress(Exception):
        store.delete(f"{JOURNAL}/{run}")
        root = store.local_path(JOURNAL)
        if root is None or not root.is_dir():
            return
        host = socket.gethostname().replace("/", "_").replace("-", "_")
        for folder in root.iterdir():
            name_host, _, rest = folder.name.partition("-")
            pid = rest.partition("-")[0]
            if name_host == host and pid.isdigit() and not pid_alive(int(pid)):
                store.delete(f"{JOURNAL}/{folder.name}")


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still runs (its leases and journal are still owned)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _as_dict(record: Any) -> dict[str, Any]:
    if hasattr(record, "to_dict"):
        return dict(record.to_dict())
    fields = ("path", "hash", "size", "format", "stamp", "metadata")
    return {f: getattr(record, f) for f in fields}


def _same(info: Any, record: ArtifactRecord) -> bool:
    return info is not None and info.size == record.size and info.stamp == record.stamp


__all__ = ["JOURNAL", "forget", "new_id", "read", "write"]
