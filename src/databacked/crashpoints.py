"""Numbered crash points: where the fault-injection campaign kills or fails a process on purpose.

Each point is one line in the code it guards (``crashpoint("store.file.staged")``) and costs
a dictionary lookup when no fault is asked for. Two environment variables arm them:

- ``DATABACKED_CRASHPOINT=name`` (or ``name@n``, the n-th hit in this process): the process
  sends itself SIGKILL there, as a power cut or the OOM killer would; nothing is flushed.
- ``DATABACKED_FAULT=name:ENOSPC`` (or ``:EIO``, any errno name, optionally ``@n``): an
  ``OSError`` with that errno is raised there, as a full or failing disk would.

With ``DATABACKED_CRASHPOINT_LOG=file`` each injection appends one line there first.
``tests/reliability/`` hits every point in ``POINTS`` and resumes; a test checks that each
name listed here is really called somewhere in the package, so the list cannot go stale.
"""

from __future__ import annotations

import errno
import os
import signal
import threading

POINTS: dict[int, str] = {
    1: "store.file.write",  # a block of a file is about to be written to its staging file
    2: "store.file.staged",  # a file is complete in staging, not yet renamed or uploaded
    3: "store.file.committed",  # a file is renamed into place, before its record returns
    4: "store.dir.write",  # a file of a folder artifact (Zarr) is about to be written
    5: "store.dir.staged",  # a folder is complete in staging, before the swap
    6: "store.dir.swapped",  # the new folder is in place, the old one not yet removed
    7: "catalog.commit.before",  # call rows built, transaction not yet committed
    8: "catalog.commit.after",  # call rows committed, leases not yet released
    9: "scheduler.submit",  # keys leased, the batch not yet handed to the executor
    10: "scheduler.flush",  # outputs synced to disk, call rows not yet written
}
"""Every crash point, by number; the campaign iterates over these."""

_hits: dict[str, int] = {}
_lock = threading.Lock()
_armed_now: list[tuple[str, int, str] | None] = [None, None]  # crash, fault


def _armed(variable: str) -> tuple[str, int, str] | None:
    """(name, hit number, errno name) from ``name[:ERRNO][@n]``, or None when unset."""
    text = os.environ.get(variable)
    if not text:
        return None
    text, _, nth = text.partition("@")
    name, _, code = text.partition(":")
    return name, int(nth or 1), code


def reload() -> None:
    """Read the two variables again (they are read once at import; tests that set them in
    this process call this), and start counting hits afresh."""
    _armed_now[:] = [_armed("DATABACKED_CRASHPOINT"), _armed("DATABACKED_FAULT")]
    with _lock:
        _hits.clear()


def crashpoint(name: str) -> None:
    """Kill this process (SIGKILL) or raise an injected OSError if ``name`` is armed."""
    crash, fault = _armed_now
    if crash is None and fault is None:
        return
    with _lock:
        _hits[name] = count = _hits.get(name, 0) + 1
    if crash is not None and crash[0] == name and count == crash[1]:
        _note(f"kill {name}@{count}")
        os.kill(os.getpid(), signal.SIGKILL)
    if fault is not None and fault[0] == name and count >= fault[1]:
        code = getattr(errno, fault[2] or "EIO", errno.EIO)
        _note(f"{errno.errorcode.get(code, code)} {name}@{count}")
        raise OSError(code, f"{os.strerror(code)} (injected at {name})")


def _note(line: str) -> None:
    """Append what was injected to ``DATABACKED_CRASHPOINT_LOG``, so a campaign counts it."""
    path = os.environ.get("DATABACKED_CRASHPOINT_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{os.getpid()} {line}\n")


reload()

__all__ = ["POINTS", "crashpoint", "reload"]
