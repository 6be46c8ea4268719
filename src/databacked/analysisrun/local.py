"""Local and notebook runs: every lane a databacked call through ``db.run``, then the export.

The engine keys, leases, caches and records the lane calls; this module turns the lanes
into calls, and the calls' outputs back into the result table and the image files in
``output_dir`` (which is the store, with its catalog under ``.databacked/``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger("databacked.analysisrun")


@dataclass
class LaneFailure:
    """A lane whose call failed, with the error text (the lane process's stderr in it)."""

    data_name: str
    sample_name: str
    error: str


@dataclass
class LaneRun:
    """What a local or notebook run produced."""

    results: pd.DataFrame
    failures: list[LaneFailure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    """Lane calls by status: ran, cached, failed, skipped."""
    run_id: str = ""
    images: dict[str, str] = field(default_factory=dict)
    """Image name -> path written in output_dir."""


def analyze_fingerprint(analyze: Callable[..., Any]) -> str:
    """The fingerprint the engine gives a step: normalised source and local helpers."""
    from databacked.engine.keys import fingerprint

    name = getattr(analyze, "__qualname__", None) or getattr(analyze, "__name__", "analyze")
    return fingerprint(analyze, name, None)


def run_lanes(
    analyze: Callable[..., Any],
    params: Any,
    params_type: type,
    results_type: type,
    lanes: list[tuple[str, str, dict[str, pd.DataFrame]]],
    *,
    entry: str,
    output_dir: Path,
    store: Any = None,
    catalog: Any = None,
    executor: Any = None,
    workers: int | None = None,
) -> LaneRun:
    """Run (or find cached) every lane; write images to the store root; return the rows."""
    import databacked as db
    from databacked.analysisrun.lanestep import IN_PROCESS, analysisrun_lane, register
    from databacked.analysisrun.serve import close_all
    from databacked.catalog import Catalog
    from databacked.engine.pipeline import Pipeline
    from databacked.store import Store

    fingerprint = analyze_fingerprint(analyze)
    if entry == IN_PROCESS:
        register(fingerprint, analyze, params_type, results_type)
    params_json = params.model_dump(mode="json")

    def wire() -> dict[int, Any]:
        # A dict, not a list: the values of lanes that ran stay readable when others failed.
        return {
            index: analysisrun_lane(
                entry=entry, analyze=fingerprint, params=params_json, data_name=data_name,
                sample_name=sample_name, data=frames,
            )
            for index, (data_name, sample_name, frames) in enumerate(lanes)
        }  # fmt: skip

    output_dir.mkdir(parents=True, exist_ok=True)
    store_obj = store if isinstance(store, Store) else Store(store or str(output_dir))
    own_catalog = not isinstance(catalog, Catalog)
    catalog_obj = (
        catalog
        if not own_catalog
        else Catalog.open(catalog or f"sqlite:///{output_dir / '.databacked' / 'catalog.db'}")
    )
    workers = workers or (os.cpu_count() or 1)
    executor_obj = _executor(executor or ("inline" if entry == IN_PROCESS else "threads"), workers)
    try:
        result = db.run(
            Pipeline(wire, name="analysisrun"),
            store=store_obj,
            catalog=catalog_obj,
            executor=executor_obj,
            workers=workers,
        )
        rows, failures = [], []
        table = result.calls
        values = result.value
        failed = getattr(values, "failed", {})  # a PartialValue names the lanes that failed
        for index, ((data_name, sample_name, _), (_, call)) in enumerate(
            zip(lanes, table.iterrows(), strict=True)
        ):
            if index in failed:
                failures.append(LaneFailure(data_name, sample_name, str(call["error"] or "")))
                continue
            rows.append((data_name, values[index]))
        images = _export_images(store_obj, catalog_obj, rows, result.run_id) if not failures else {}
        frames = [value["result"].load() for _, value in rows]
        results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return LaneRun(results, failures, result.counts(), result.run_id, images)
    finally:
        if executor_obj is not executor:
            executor_obj.close()
        close_all()
        if own_catalog:
            catalog_obj.close()


def _executor(executor: Any, workers: int) -> Any:
    """The executor for lane calls. A bare ``dask`` gets a local cluster of threads: a lane
    call only waits for its lane process, and worker processes would be spawned by
    re-importing the user's script, which runs its analysis at top level."""
    from databacked.executors import get_executor

    if not isinstance(executor, str):
        return executor
    if executor.strip().lower() == "dask":
        return get_executor(
            "dask", workers=workers, cluster_class="distributed.LocalCluster",
            cluster_kwargs={
                "processes": False, "threads_per_worker": 1, "n_workers": workers,
                "dashboard_address": None, "worker_dashboard_address": "127.0.0.1:0",
                "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            },
        )  # fmt: skip
    return get_executor(executor, workers=workers)


def _export_images(
    store: Any, catalog: Any, rows: list[tuple[str, Any]], run_id: str
) -> dict[str, str]:
    """Each lane's images as plain files at the store root (analysisrun's output_dir); a file
    already holding the same bytes is left alone. Each lane's export is recorded as a call
    (step ``analysisrun_export``, input: the lane's images table), so ``databacked lineage``
    leads from an image to the lane call that drew it."""
    import socket
    import time

    from databacked.catalog.records import CallRecord, InputRef
    from databacked.formats.base import ArtifactRecord
    from databacked.formats.registry import format_for_path
    from databacked.hashing import combine, hash_bytes

    written: dict[str, str] = {}
    calls = []
    for data_name, value in rows:
        source = value["images"]
        table = source.load()
        started = time.time()
        outputs = {}
        for name, raw in zip(table["name"], table["data"], strict=True):
            path = store.check_path(str(name))
            data = bytes(raw)
            written[str(name)] = store.uri(path)
            if (
                store.exists(path)
                and store.info(path).size == len(data)
                and (store.hash(path) == hash_bytes(data))
            ):
                continue
            done = store.put_bytes(path, data)
            fmt = format_for_path(path)
            outputs[str(name)] = ArtifactRecord(
                path=done.path, hash=done.hash, size=done.size,
                format=fmt.name if fmt is not None else "", stamp=done.stamp,
                metadata={"analysisrun_lane": data_name},
            )  # fmt: skip
        if outputs:
            calls.append(
                CallRecord(
                    key=combine("analysisrun-export", source.hash, *sorted(outputs)),
                    step="analysisrun_export", fingerprint="analysisrun_export@1",
                    run_id=run_id, store=store.url, params={"data_name": data_name},
                    inputs={"images": [InputRef(source.hash, source.path)]}, outputs=outputs,
                    started=started, finished=time.time(), host=socket.gethostname(),
                    pid=os.getpid(),
                )
            )  # fmt: skip
    if calls:
        store.sync()
        catalog.record_calls(calls)
    log.debug("analysisrun: %d images in %s (%d lanes exported)", len(written), store.url,
              len(calls))  # fmt: skip
    return written


__all__ = ["LaneFailure", "LaneRun", "analyze_fingerprint", "run_lanes"]
