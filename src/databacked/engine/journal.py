"""Finished calls left in the store by workers, so a kill loses only the calls in flight.

A worker appends one JSON line per finished call to its file of the run
(``.databacked/journal/<run>/<pid>.jsonl``) right after the call's outputs are written,
before the driver hears of it; failed calls too, and a line before a call with a timeout
starts, which says it timed out should its worker be ended for it (``worker.deadline``).
The driver removes the run's folder once everything it finished is committed to the
catalog. When a driver (or the worker running a batch) is killed with SIGKILL, the entries
of the calls that had finished are still there: the next driver that leases those keys
adopts them, after checking that each output still has the size and stamp the worker saw,
instead of computing them again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from databacked.engine.worker import CallOutcome
from databacked.formats.base import ArtifactRecord

JOURNAL = ".databacked/journal"
"""Folder of the entries, relative to the store root: one folder per driver run."""

log = logging.getLogger("databacked.engine.journal")
_files: dict[str, Any] = {}
"""Append handles of this process, by local path: one open per worker process and run."""
_files_lock = threading.Lock()
"""On ``threads`` the calls of a run share one handle: one opens it, one writes at a time."""
_expecting: set[str] = set()
"""Keys whose timeout this process noted (``expect_timeout``) and whose end it has not."""


def new_id() -> str:
    """A run's journal folder name: host, driver pid (to tell dead runs) and a random part."""
    host = socket.gethostname().replace("/", "_").replace("-", "_")
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def write(store: Any, outcome: Any, run: str | None) -> None:
    """Leave a finished call in the store; never raises.

    A call with outputs can be adopted by a later driver; a failed one tells this run's
    driver how the call ended if its worker dies before answering. Locally, one line
    appended to this process's file of the run (no file created per call); on object
    stores, one small object per call.
    """
    if not run:
        return
    key = outcome.key
    status = getattr(outcome, "status", "")
    records = getattr(outcome, "records", None)
    entry: dict[str, Any] = {
        "key": key,
        "status": status,
        "started": outcome.started,
        "finished": outcome.finished,
        "host": getattr(outcome, "host", ""),
        "pid": outcome.pid,
        "stdout": outcome.stdout,
        "stderr": outcome.stderr,
    }
    if status == "ok" and records:
        entry["records"] = {name: _as_dict(r) for name, r in records.items()}
    elif status == "failed":
        entry["error_type"] = outcome.error_type
        entry["error_message"] = outcome.error_message
        entry["traceback"] = outcome.traceback
    elif key in _expecting:
        entry = {"key": key, "status": "settled", "started": outcome.started}
    else:
        return
    _expecting.discard(key)
    _append(store, run, key, entry)


def expect_timeout(store: Any, run: str, key: str, started: float, seconds: float) -> None:
    """Note, before a call with a timeout runs, that it timed out if its worker dies after
    ``seconds``: a call stuck in C code cannot answer, its worker process is ended instead
    (``worker.deadline``). The call's own entry, once it finishes, supersedes this one."""
    entry = {
        "key": key,
        "status": "timeout",
        "started": started,
        "deadline": time.time() + seconds,
        "error_message": f"timeout after {seconds:g} s",
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    _expecting.add(key)
    _append(store, run, key, entry)


def _append(store: Any, run: str, key: str, entry: dict[str, Any]) -> None:
    line = json.dumps(entry) + "\n"
    try:
        local = store.local_path(f"{JOURNAL}/{run}/{os.getpid()}.jsonl")
        if local is None:
            store.put_bytes(f"{JOURNAL}/{run}/{key}.json", line.encode())
            return
        with _files_lock:
            handle = _files.get(str(local))
            if handle is None:
                local.parent.mkdir(parents=True, exist_ok=True)
                handle = _files[str(local)] = open(local, "a", encoding="utf-8")  # noqa: SIM115
            # A torn last line (killed mid-write) does not parse and is ignored.
            handle.write(line)
            handle.flush()
    except Exception as exc:  # the journal is an optimisation: the call itself succeeded
        log.debug("could not journal call %s: %s", key[:12], exc)


def read(
    store: Any,
    keys: Iterable[str],
    *,
    skip: str | None = None,
    attempts: Mapping[str, float] | None = None,
) -> dict[str, CallOutcome]:
    """Entries for ``keys`` (from runs other than ``skip``) whose outputs are as left.

    With ``attempts`` (key -> when its current attempt was sent), how those attempts ended
    counts too when they did not finish with outputs: failed, or stopped past their timeout
    (once that time has passed), so a worker's death is not blamed on them.
    """
    wanted = set(keys)
    tried = dict(attempts or {})
    if not (wanted or tried) or not store.exists(JOURNAL):
        return {}
    entries: dict[str, dict[str, Any]] = {}
    ended: dict[str, dict[str, Any]] = {}
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
            if not isinstance(entry, dict):
                continue
            key = entry.get("key")
            if entry.get("records") and key in wanted:
                entries[key] = entry
            # the latest line of the latest attempt: a call's own end supersedes its note
            latest = key not in ended or _since(entry) >= _since(ended[key])
            if key in tried and _since(entry) >= tried[key] and latest:
                ended[key] = entry
    outcomes: dict[str, CallOutcome] = {}
    for key, entry in entries.items():
        try:
            records = {n: ArtifactRecord.from_dict(r) for n, r in entry["records"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        outcomes[key] = CallOutcome(
            key=key,
            status="ok",
            records=records,
            started=_since(entry),
            finished=float(entry.get("finished") or 0.0),
            host=str(entry.get("host") or ""),
            pid=int(entry.get("pid") or 0),
            stdout=str(entry.get("stdout") or ""),
            stderr=str(entry.get("stderr") or ""),
        )
    outputs = [r.path for o in outcomes.values() for r in o.records.values()]
    infos = store.infos(outputs) if outputs else {}
    found = {
        key: outcome
        for key, outcome in outcomes.items()
        if all(_same(infos.get(r.path), r) for r in outcome.records.values())
    }
    for key, entry in ended.items():
        if key not in found:
            failed = _failure(key, entry)
            if failed is not None:
                found[key] = failed
    return found


def _since(entry: Mapping[str, Any]) -> float:
    try:
        return float(entry.get("started") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _failure(key: str, entry: Mapping[str, Any]) -> CallOutcome | None:
    """The failed outcome an entry tells of, or None (finished, or its deadline is ahead)."""
    status = entry.get("status")
    common = {
        "key": key,
        "status": "failed",
        "started": _since(entry),
        "host": str(entry.get("host") or ""),
        "pid": int(entry.get("pid") or 0),
    }
    if status == "timeout":
        deadline = float(entry.get("deadline") or 0.0)
        if time.time() < deadline:
            return None  # the worker died before the call was due: not the call's timeout
        message = str(entry.get("error_message") or "timeout")
        return CallOutcome(
            **common, error_type="CallTimeout", error_message=message, finished=deadline
        )
    if status == "failed":
        return CallOutcome(
            **common,
            error_type=str(entry.get("error_type") or ""),
            error_message=str(entry.get("error_message") or ""),
            traceback=str(entry.get("traceback") or ""),
            finished=float(entry.get("finished") or 0.0),
            stdout=str(entry.get("stdout") or ""),
            stderr=str(entry.get("stderr") or ""),
        )
    return None


def forget(store: Any, run: str) -> None:
    """Drop a run's entries once everything it finished is committed to the catalog, and
    those of dead runs on this host (what they left was adopted, or runs again)."""
    with _files_lock:
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


__all__ = ["JOURNAL", "expect_timeout", "forget", "new_id", "read", "write"]
