"""Helpers shared by the Prefect integration tests (imported by name, not a conftest)."""

from __future__ import annotations

from typing import Any


def task_states(flow_state: Any) -> dict[str, list[str]]:
    """Task name -> state names of the flow run's task runs (``Cached``, ``Completed``...)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run_id = flow_state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    out: dict[str, list[str]] = {}
    for run in runs:
        out.setdefault(run.name.rsplit("-", 1)[0], []).append(run.state.name)
    return {name: sorted(states) for name, states in out.items()}
