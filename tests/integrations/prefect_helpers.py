"""Helpers shared by the Prefect integration tests (imported by name, not a conftest)."""

from __future__ import annotations

import time
from typing import Any

FINAL = {"Completed", "Cached", "Failed", "Crashed", "Cancelled"}


def task_states(flow_state: Any, expected: int | None = None) -> dict[str, list[str]]:
    """Task name -> state names of the flow run's task runs (``Cached``, ``Completed``...).

    Prefect 3 reports task-run states through events the API records in the background, so
    a flow that has just returned may still show ``Running``: wait until every state is
    final (the flow itself has finished, so they all become final).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run_id = flow_state.state_details.flow_run_id
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            names = [run.state.name if run.state else "" for run in runs]
            settled = all(name in FINAL for name in names)
            if (settled and (expected is None or len(runs) >= expected)) or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(0.2)
    out: dict[str, list[str]] = {}
    for run, name in zip(runs, names, strict=True):
        out.setdefault(run.name.rsplit("-", 1)[0], []).append(name)
    return {task: sorted(states) for task, states in out.items()}
