"""``db.run`` and ``db.plan``: what the CLI, notebooks and scripts call.

Store, catalog and executor may be URLs or objects (a test passes real objects rather than
patching internals); what is not given comes from ``databacked.config.load_settings``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from databacked.catalog import fresh_sqlite
from databacked.config import load_settings
from databacked.engine import lossy, provenance
from databacked.engine.events import CallEvent
from databacked.engine.graph import Handle, MapResult
from databacked.engine.keys import is_project_local
from databacked.engine.pipeline import as_pipeline
from databacked.engine.plan import CallState
from databacked.engine.scheduler import Scheduler
from databacked.errors import StepFailed

log = logging.getLogger("databacked.engine.api")

CALL_COLUMNS = ["step", "key", "status", "reason", "seconds", "outputs", "error"]
PLAN_COLUMNS = ["step", "key", "status", "reason", "target"]


class RunResult:
    """The outcome of ``db.run``: ``ok``, ``value`` (lazy artifacts), ``calls`` table."""

    def __init__(self, run_id: str, value: Any, states: list[CallState], store: Any) -> None:
        self.run_id = run_id
        self._value = value
        self._states = states
        self.store = store
        self.ok = all(s.status in ("ran", "cached") for s in states)

    @property
    def value(self) -> Any:
        """The pipeline's return value, step results as Artifacts (or in-memory values).

        Raises ``StepFailed`` when a call behind it failed or was skipped.
        """
        return _resolve(self._value, {s.node.id: s for s in self._states}, self.store)

    def failures(self) -> list[CallState]:
        """The failed calls, in the order they were planned."""
        return [s for s in self._states if s.status == "failed"]

    @property
    def calls(self) -> Any:
        import pandas as pd

        rows = [
            {
                "step": s.step.name,
                "key": s.key,
                "status": s.status if s.status in ("ran", "cached", "failed") else "skipped",
                "reason": s.reason,
                "seconds": s.seconds,
                "outputs": {n: getattr(r, "path", None) for n, r in s.records.items()},
                "error": s.error or None,
            }
            for s in self._states
        ]
        return pd.DataFrame(rows, columns=CALL_COLUMNS)

    def counts(self) -> dict[str, int]:
        """Calls per status: ran, cached, failed, skipped."""
        out = dict.fromkeys(("ran", "cached", "failed", "skipped"), 0)
        for s in self._states:
            status = s.status if s.status in out else "skipped"
            out[status] += 1
        return out

    def step_counts(self) -> dict[str, dict[str, int]]:
        """Calls per step and status (cached calls too, which a run records no row for)."""
        out: dict[str, dict[str, int]] = {}
        for s in self._states:
            status = s.status if s.status in ("ran", "cached", "failed") else "skipped"
            per = out.setdefault(s.step.name, {})
            per[status] = per.get(status, 0) + 1
        return out

    def summary(self) -> str:
        counts = self.counts()
        text = ", ".join(f"{n} {status}" for status, n in counts.items())
        first = next((s for s in self._states if s.status == "failed"), None)
        if first is not None:
            text += f"; first failure: {first.step.name} ({first.key[:12]}): {first.error}"
        return text

    def raise_for_status(self) -> RunResult:
        """Raise ``StepFailed`` for the first failed call; return self when all went well."""
        for s in self._states:
            if s.status == "failed":
                error_type, _, message = s.error.partition(": ")
                raise StepFailed(
                    f"Step {s.step.name!r} failed ({s.error}); see `databacked show "
                    f"{s.key[:12]}` for the traceback and output.",
                    step=s.step.name,
                    key=s.key,
                    error_type=error_type,
                    error_message=message,
                )
        return self

    def __repr__(self) -> str:
        return f"<RunResult {'ok' if self.ok else 'failed'}: {self.summary()}>"

    def _log_failures(self, pipeline: str) -> None:
        """One line for a notebook or script, where nobody reads ``result.ok``."""
        failed = self.failures()
        if failed:
            log.warning(
                "Run %s of %s: %s; `result.calls` lists every error, `databacked show KEY` "
                "a traceback.",
                self.run_id[:8],
                pipeline,
                self.summary(),
            )


@dataclass
class PlanResult:
    """The outcome of ``db.plan``: ``calls`` (step, key, status, reason, target)."""

    calls: Any

    def counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.calls["status"].value_counts().items()}


WORKER_MODULES = ("databacked.engine.worker", "databacked.engine.capture", "databacked.store")
"""What every worker imports before its first call (``Executor.warm``)."""


def run(
    pipeline: Any,
    *args: Any,
    store: Any = None,
    catalog: Any = None,
    executor: Any = None,
    workers: int | None = None,
    verify: bool | None = None,
    progress: Callable[[CallEvent], None] | None = None,
    raise_on_failure: bool = False,
    grace: float | None = None,
    resources: dict[str, Any] | None = None,
    **kwargs: Any,
) -> RunResult:
    """Run a pipeline: only new or changed calls compute. Returns even when calls failed
    (logging one line about them), unless ``raise_on_failure=True``: then ``StepFailed``.

    ``store``/``catalog``/``executor``: URL strings or objects; None -> configuration.
    ``grace``: seconds running calls get after SIGINT/SIGTERM (None -> configuration).
    ``resources``: capacities, e.g. ``{"gpus": 1}`` (None -> configuration, else detected).
    """
    from databacked.executors import get_executor

    pipe = as_pipeline(pipeline)
    settings = _settings(store, catalog, executor, workers, verify)
    own_executor = executor is None or isinstance(executor, str)
    executor_name = executor or settings.executor
    executor_obj = get_executor(
        executor_name,
        workers=workers or settings.workers,
        **_executor_options(executor_name, settings),
    )
    try:
        traced = pipe.trace(*args, **kwargs)
        lossy.check_graph(traced.graph)
        steps = {id(n.step): n.step for n in traced.graph.nodes}.values()
        if getattr(executor_obj, "name", "") != "inline":
            _pickle_by_value(steps)
        warm = getattr(executor_obj, "warm", None)
        if own_executor and warm is not None and fresh_sqlite(catalog or settings.catalog):
            # workers start, and import what the steps need, while the driver creates the
            # catalog and plans
            warm(WORKER_MODULES, [s.fn for s in steps])
        store_obj, catalog_obj, own_catalog = _open(store, catalog, settings)
    except BaseException:
        if own_executor:
            executor_obj.close()
        raise
    try:
        config = {
            **settings.redacted(),
            "store": str(store_obj.url),
            "catalog": str(getattr(catalog_obj, "url_redacted", "")),
            "executor": str(getattr(executor_obj, "name", executor_obj)),
            "steps": {s.name: f"{s.fn.__module__}:{s.fn.__qualname__}" for s in steps},
        }
        run_id = catalog_obj.start_run(
            provenance.run_info(pipe.name, [s.fn.__module__ for s in steps], config)
        )
        scheduler = Scheduler(
            traced.graph,
            store_obj,
            catalog_obj,
            executor_obj,
            run_id=run_id,
            verify=bool(settings.verify),
            progress=progress,
            lease_ttl=settings.lease_ttl,
            grace=settings.grace if grace is None else grace,
            resources={**settings.resources, **(resources or {})},
        )
        try:
            states = scheduler.run()
        except BaseException:
            catalog_obj.finish_run(run_id, "error", {})
            raise
        result = RunResult(run_id, traced.value, states, store_obj)
        summary = {**result.counts(), "steps": result.step_counts()}
        catalog_obj.finish_run(run_id, "ok" if result.ok else "failed", summary)
        if raise_on_failure:
            result.raise_for_status()
        if progress is None:  # the CLI (a progress callback) prints its own summary
            result._log_failures(pipe.name)
        return result
    finally:
        if own_executor:
            executor_obj.close()
        if own_catalog:
            catalog_obj.close()


def plan(
    pipeline: Any, *args: Any, store: Any = None, catalog: Any = None, **kwargs: Any
) -> PlanResult:
    """What a run would do: each call cached, to run or waiting, and why. Runs nothing."""
    import pandas as pd

    pipe = as_pipeline(pipeline)
    settings = _settings(store, catalog, None, None, None)
    store_obj, catalog_obj, own_catalog = _open(store, catalog, settings)
    try:
        traced = pipe.trace(*args, **kwargs)
        lossy.check_graph(traced.graph)
        scheduler = Scheduler(
            traced.graph, store_obj, catalog_obj, None, verify=bool(settings.verify), dry_run=True
        )
        states = scheduler.run()
    finally:
        if own_catalog:
            catalog_obj.close()
    rows = []
    for s in states:
        status = s.status if s.status in ("cached", "run") else "waiting"
        reason = s.reason if status != "waiting" else (s.reason or "upstream not computed yet")
        target = next((p for p in s.targets.values() if p), None)
        rows.append([s.step.name, s.key, status, reason, target])
    for node in traced.graph.nodes:
        if getattr(node, "children", 0) is None:
            rows.append([node.step.name, "", "waiting", "fan-out over an upstream list", None])
    return PlanResult(pd.DataFrame(rows, columns=PLAN_COLUMNS))


def _settings(store: Any, catalog: Any, executor: Any, workers: Any, verify: Any) -> Any:
    return load_settings(
        store=store if isinstance(store, str) else None,
        catalog=catalog if isinstance(catalog, str) else None,
        executor=executor if isinstance(executor, str) else None,
        workers=workers,
        verify=verify,
    )


def _open(store: Any, catalog: Any, settings: Any) -> tuple[Any, Any, bool]:
    from databacked.catalog import Catalog
    from databacked.store import Store

    if isinstance(store, Store):
        store_obj = store
    else:
        store_obj = Store(
            store or settings.store,
            storage_options=settings.storage_options or None,
            durability=settings.durability,
        )
    own_catalog = not isinstance(catalog, Catalog)
    catalog_obj = catalog if not own_catalog else Catalog.open(catalog or settings.catalog)
    return store_obj, catalog_obj, own_catalog


def _pickle_by_value(steps: Any) -> None:
    """The user's own step modules travel by value with cloudpickle (``__main__`` always
    does): a FILE.py loaded by path or a folder only the driver has on sys.path cannot be
    imported by a worker process, and their helpers must travel with the steps."""
    import cloudpickle

    for step in steps:
        name = step.fn.__module__
        if name != "__main__" and name in sys.modules and is_project_local(step.fn):
            cloudpickle.register_pickle_by_value(sys.modules[name])


def _resolve(value: Any, states: dict[int, CallState], store: Any) -> Any:
    if isinstance(value, Handle):
        state = states[value.node.id]
        name = value.output or state.step.output_names[0]
        if state.status not in ("ran", "cached"):
            raise _not_computed(state, states)
        if not state.step.persist:
            return state.value[name] if state.step.multi and value.output else state.value
        if state.step.multi and value.output is None:
            return {n: _artifact(store, r) for n, r in state.records.items()}
        return _artifact(store, state.records[name])
    if isinstance(value, MapResult):
        if value.expand is not None and value.expand.children is None:
            # the list to fan out over was never produced (an upstream failed)
            raise _not_computed(None, states, value.expand.step.name)
        return [_resolve(h, states, store) for h in value.handles()]
    if isinstance(value, list | tuple):
        return type(value)(_resolve(v, states, store) for v in value)
    if isinstance(value, dict):
        resolved: dict[Any, Any] = {}
        failed: dict[Any, StepFailed] = {}
        for k, v in value.items():
            try:
                resolved[k] = _resolve(v, states, store)
            except StepFailed as exc:
                resolved[k], failed[k] = None, exc
        return PartialValue(resolved, failed) if failed else resolved
    return value


class PartialValue(dict):  # type: ignore[type-arg]
    """A pipeline's dict value when some entries failed: those raise ``StepFailed`` when
    read (``value["summary"]``), the others are there as usual."""

    def __init__(self, values: dict[Any, Any], failed: dict[Any, StepFailed]) -> None:
        super().__init__(values)
        self.failed = failed

    def __getitem__(self, key: Any) -> Any:
        if key in self.failed:
            raise self.failed[key]
        return super().__getitem__(key)


def _not_computed(
    state: CallState | None, states: dict[int, CallState], step: str = ""
) -> StepFailed:
    """Why a value is not there: its call failed, or it was skipped after another failed."""
    failed = state if state is not None and state.status == "failed" else None
    if failed is None:
        failed = next((s for s in states.values() if s.status == "failed"), None)
    step = state.step.name if state is not None else step
    if failed is None:
        return StepFailed(
            f"Step {step!r} has no value: it did not run; look at `result.calls`.", step=step
        )
    error_type, _, message = failed.error.partition(": ")
    because = (
        f"its call failed ({failed.error})"
        if failed is state
        else f"it was skipped because step {failed.step.name!r} failed ({failed.error})"
    )
    return StepFailed(
        f"Step {step!r} has no value: {because}; see `databacked show {failed.key[:12]}` "
        "for the traceback, fix it and run again (finished calls stay cached).",
        step=failed.step.name,
        key=failed.key,
        error_type=error_type,
        error_message=message,
    )


def _artifact(store: Any, record: Any) -> Any:
    from databacked.artifact import Artifact

    return Artifact.from_record(store, record)


__all__ = ["PlanResult", "RunResult", "plan", "run"]


_CELERY_SCHEMES = ("celery", "amqp", "amqps", "pyamqp", "redis", "rediss")


def _executor_options(name: Any, settings: Any) -> dict[str, Any]:
    """Options from the configuration's executor sections ([dask], [celery]) for a name."""
    if not isinstance(name, str):
        return {}
    name = name.strip().lower()
    if name == "dask":
        dask = settings.dask.model_dump()
        return {k: v for k, v in dask.items() if v not in (None, {}, [])}
    # [worker] key signs the messages of executors whose workers check them.
    key = os.environ.get("DATABACKED_WORKER_KEY") or getattr(
        getattr(settings, "worker", None), "key", None
    )
    signed = {"key": key} if key else {}
    if name == "celery" or (name.split("://", 1)[0] in _CELERY_SCHEMES and "://" in name):
        celery = settings.celery.model_dump()
        if name != "celery":
            celery.pop("broker", None)  # the URL names the broker
        return {**{k: v for k, v in celery.items() if v is not None}, **signed}
    if name == "subprocess":
        return signed
    return {}
