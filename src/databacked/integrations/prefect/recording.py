"""Every file made through the integration goes into databacked's catalog.

A task run that wrote files is recorded as a completed call under its cache key, with its
file inputs as lineage edges, so ``databacked ls``, ``lineage`` and ``verify`` see it.
Recording happens where Prefect persists the result (inside the task run).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from databacked.engine.records import params_summary
from databacked.errors import DatabackedError
from databacked.integrations.prefect import batches
from databacked.integrations.prefect.pointers import Pointer

log = logging.getLogger("databacked.integrations.prefect")

_RUN_OUTPUTS: dict[str, list[Pointer]] = {}
"""Task run id -> files our ``task`` decorator wrote in it (the serializer records them)."""
_LOCK = threading.Lock()


def remember(pointer: Pointer) -> None:
    """Note a file the current task run wrote (no-op outside a task run)."""
    run_id = _task_run_id()
    if run_id is not None:
        with _LOCK:
            _RUN_OUTPUTS.setdefault(run_id, []).append(pointer)


def outputs_of_current_run() -> list[Pointer]:
    run_id = _task_run_id()
    with _LOCK:
        return list(_RUN_OUTPUTS.get(run_id or "", ()))


def forget_current_run() -> None:
    run_id = _task_run_id()
    with _LOCK:
        _RUN_OUTPUTS.pop(run_id or "", None)


def _task_run_id() -> str | None:
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    return str(ctx.task_run.id) if ctx is not None and ctx.task_run is not None else None


def record_outputs(pointers: Sequence[Pointer], names: Sequence[str] | None = None) -> None:
    """Record the current task run's output files in the catalog (a call, or bare artifacts)."""
    if not pointers:
        return
    from prefect.context import TaskRunContext
    from prefect.transactions import get_transaction

    from databacked.catalog.records import CallRecord
    from databacked.integrations.prefect.inputs import split, task_fingerprint

    ctx = TaskRunContext.get()
    txn = get_transaction()
    key = getattr(txn, "key", None)
    if ctx is None or not key:
        by_store: dict[str, list[Any]] = {}
        for p in pointers:
            by_store.setdefault(p.store, []).append(p.record())
        for store_url, records in by_store.items():
            batches.put("artifacts", (store_url, records))
        return
    task = ctx.task
    parameters = dict(ctx.parameters or {})
    home = pointers[0].store
    outputs = {
        (names[i] if names else ("value" if len(pointers) == 1 else f"value.{i}")): p.record()
        for i, p in enumerate(pointers)
        if p.store == home
    }
    for p in pointers:
        if p.store != home:
            batches.put("artifacts", (p.store, [p.record()]))
    try:
        plain, _ = split(parameters)
        from databacked.engine.keys import params_hash

        phash = params_hash(task.name, plain)
    except DatabackedError:
        phash = ""
    started = getattr(ctx.task_run, "start_time", None)
    record = CallRecord(
        key=key,
        step=task.name,
        fingerprint=task_fingerprint(task),
        status="ok",
        store=home,
        params_hash=phash,
        params=params_summary(parameters),
        inputs=_inputs(parameters),
        outputs=outputs,
        started=started.timestamp() if started is not None else None,
        finished=time.time(),
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    batches.put("call", (home, record))
    log.debug("recorded call %s of task %s", key[:12], task.name)


def _inputs(parameters: Mapping[str, Any]) -> dict[str, list[Any]]:
    from databacked.catalog.records import InputRef

    out: dict[str, list[Any]] = {}
    for name, value in parameters.items():
        refs = [r for r in (_ref(v) for v in _items(value)) if r is not None]
        if refs:
            out[name] = [InputRef(h, path, store) for h, path, store in refs]
    return out


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _ref(value: Any) -> tuple[str, str | None, str | None] | None:
    from databacked.artifact import Artifact
    from databacked.integrations.prefect.context import locate
    from databacked.integrations.prefect.lazy import pointer_of
    from databacked.integrations.prefect.resources import Resource, Target

    if isinstance(value, Target) and value.pointer is not None:
        return value.pointer.hash, value.pointer.path, value.pointer.store
    if isinstance(value, Resource):
        the_store, rel = locate(value.get_path())
        return value.content_hash(), rel, the_store.url
    if isinstance(value, Artifact):
        return value.hash, value.path, value.store.url
    pointer = pointer_of(value)
    if pointer is not None:
        return pointer.hash, pointer.path, pointer.store
    return None


__all__ = ["forget_current_run", "outputs_of_current_run", "record_outputs", "remember"]
