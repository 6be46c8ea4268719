"""What the driver records about a finished call: inputs, outputs, timings, output, error."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from databacked.catalog.records import CallRecord, InputRef
from databacked.engine.plan import CallState
from databacked.engine.worker import CallOutcome, InputSpec


def call_record(
    state: CallState, outcome: CallOutcome, run_id: str | None, store_url: str
) -> CallRecord:
    """The catalog row of one finished call (ok or failed)."""
    inputs: dict[str, list[InputRef | str]] = {}
    for name, spec in state.inputs.items():
        items = spec if isinstance(spec, tuple) else (spec,)
        inputs[name] = [_ref(s) for s in items]
    for name, hashes in state.input_hashes.items():
        if name not in inputs:
            path = state.params.get(name)
            if path is not None and "://" not in str(path):
                path = os.path.abspath(str(path))  # a db.File is relative to the cwd, not the store
            inputs[name] = [InputRef(hashes[0], str(path) if path is not None else None)]
    return CallRecord(
        key=state.key,
        step=state.step.name,
        fingerprint=state.step.fingerprint,
        run_id=run_id,
        status="ok" if outcome.status == "ok" else "failed",
        store=store_url,
        params_hash=state.params_hash,
        params=params_summary(state.params),
        inputs=inputs,
        outputs=dict(outcome.records),
        started=outcome.started,
        finished=outcome.finished,
        host=outcome.host,
        pid=outcome.pid,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        log=outcome.log,
        error_type=outcome.error_type,
        error_message=outcome.error_message,
        traceback=outcome.traceback,
    )


def _ref(spec: InputSpec) -> InputRef:
    return InputRef(spec.hash, spec.path)


def params_summary(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as the catalog shows them: plain values as they are, others as a short repr."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if value is None or isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            text = repr(value)
            out[name] = text if len(text) <= 200 else text[:197] + "..."
    return out


__all__ = ["call_record", "params_summary"]
