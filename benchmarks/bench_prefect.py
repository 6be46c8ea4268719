"""Prefect integration speed (issue 10): 200 small image tasks in one Prefect 3 flow.

Same work (read a 64x64 TIFF, smooth it, write the result) three ways, in one process against
one temporary Prefect API (its start-up is not counted; a warm-up run of each flow absorbs
first-use costs: Prefect's first run, imports, creating the catalog):

- baseline: ``@prefect.task(persist_result=True)`` with Prefect's defaults (pickled results in
  PREFECT_HOME/storage, default cache policy);
- databacked cold: ``task(result=LocalResult(...), target=...)`` over ``ImageSource`` inputs
  (content keys, OME-TIFF targets written through the Store, JSON pointers, catalog records);
- databacked cached: the same flow again; it must call no task function and read no image
  bytes (hashes trusted from stat stamps).

Goal: databacked cold <= 1.2x baseline.

    python benchmarks/bench_prefect.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

N = int(os.environ.get("DATABACKED_BENCH_PREFECT_TASKS", "200"))
# counters as objects, not dicts: a module-level dict a task reads is a constant of its
# fingerprint (databacked keys constants), and this one changes while the tasks run
CALLS = SimpleNamespace(n=0)
READS = SimpleNamespace(pixels=0, hashes=0)


def _images(folder: Path) -> list[str]:
    import numpy as np
    import tifffile

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N):
        path = folder / f"img{i:03d}.tif"
        tifffile.imwrite(path, (rng.random((64, 64)) * 1000).astype("uint16"))
        paths.append(str(path))
    return paths


def _smooth(pixels: Any) -> Any:
    import numpy as np

    out = pixels.astype("float32")
    out[1:-1, 1:-1] = (out[:-2, 1:-1] + out[2:, 1:-1] + out[1:-1, :-2] + out[1:-1, 2:]) / 4
    return np.asarray(out)


def _flows(out: Path) -> tuple[Any, Any]:
    import tifffile
    from prefect import flow
    from prefect import task as prefect_task

    from databacked.integrations.prefect import ArrayToOmeTiff, ImageSource, LocalResult, task

    @prefect_task(persist_result=True)
    def smooth_default(path: str) -> Any:
        CALLS.n += 1
        return _smooth(tifffile.imread(path))

    @task(
        result=LocalResult(dir=out, serializer=ArrayToOmeTiff(dimensions="YX")),
        target=lambda **kwargs: f"{kwargs['image'].get_name()}.ome.tiff",
    )
    def smooth(image: ImageSource) -> Any:
        CALLS.n += 1
        return _smooth(image.get_data())

    @flow
    def baseline(paths: list[str]) -> int:
        return len(smooth_default.map(paths).result())

    @flow
    def integrated(paths: list[str]) -> int:
        return len(smooth.map([ImageSource.from_path(p) for p in paths]).result())

    return baseline, integrated


def _count_reads() -> None:
    """Count pixel reads and content hashes of the integration (instrumentation only)."""
    from databacked.engine import files
    from databacked.integrations.prefect import pointers
    from databacked.store import Store

    read, hash_store, hash_file = pointers.Pointer.read, Store.hash, files.hash_file

    def counted_read(self: Any, **kwargs: Any) -> Any:
        READS.pixels += 1
        return read(self, **kwargs)

    def counted_store_hash(self: Any, path: str) -> str:
        READS.hashes += 1
        return hash_store(self, path)

    def counted_hash_file(*args: Any, **kwargs: Any) -> str:
        READS.hashes += 1
        return hash_file(*args, **kwargs)

    pointers.Pointer.read = counted_read  # type: ignore[method-assign]
    Store.hash = counted_store_hash  # type: ignore[method-assign]
    files.hash_file = counted_hash_file


def _timed(fn: Any, *args: Any) -> float:
    """Seconds of one flow run; then wait for the API to record its task runs' states.

    The temporary server records task-run states from events in the background and slows
    down while its backlog grows; letting it settle between runs keeps the figures of one
    run from paying for the previous one's events.
    """
    t0 = time.perf_counter()
    state = fn(*args, return_state=True)
    seconds = time.perf_counter() - t0
    _settle(state)
    return seconds


def _settle(state: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    final = {"Completed", "Cached", "Failed", "Crashed", "Cancelled"}
    flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    deadline = time.monotonic() + 300
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_task_runs(flow_run_filter=flow_filter)
            if len(runs) >= N and all(r.state and r.state.name in final for r in runs):
                return
            time.sleep(0.5)


def _spread(values: list[float]) -> str:
    return "-".join(f"{v:.1f}" for v in (min(values), max(values))) + " s"


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="databacked-bench-prefect-") as tmp:
        work = Path(tmp)
        os.environ.update(
            PREFECT_HOME=str(work / "prefect-home"),
            PREFECT_LOGGING_LEVEL="ERROR",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            DATABACKED_CATALOG=f"sqlite:///{work / 'catalog.db'}",
            DATABACKED_STORE=str(work / "out"),
        )
        from prefect.testing.utilities import prefect_test_harness

        from databacked.integrations.prefect import flush

        paths = _images(work / "images")
        with prefect_test_harness(server_startup_timeout=120):
            # warm-up: imports (dask, tifffile), the catalog's creation, Prefect's first run
            baseline, integrated = _flows(work / "warm")
            baseline(paths[:4])
            integrated(paths[:4])
            time.sleep(max(0.0, 2.1 - (time.time() - os.stat(paths[-1]).st_mtime)))
            # A B B A A B B A: each figure is the median of runs on both sides of the other's
            base, cold, cold_calls = [], [], 0
            for i, order in enumerate(("ab", "ba", "ab", "ba")):
                baseline, integrated = _flows(work / f"out{i}")
                for which in order:
                    if which == "a":
                        base.append(_timed(baseline, paths))
                    else:
                        CALLS.n = 0
                        cold.append(_timed(integrated, paths))
                        cold_calls = CALLS.n
            flush()
            _count_reads()
            CALLS.n = 0
            cached_s = _timed(integrated, paths)
            cached = SimpleNamespace(calls=CALLS.n, pixels=READS.pixels, hashes=READS.hashes)
            after_s = _timed(baseline, paths)
    base_s, cold_s = statistics.median(base), statistics.median(cold)
    note = (
        f"{N} tasks, medians of 4 runs each in A-B-B-A order (baseline {_spread(base)}, databacked "
        f"{_spread(cold)}); a cold run called {cold_calls} task functions"
    )
    return [
        {
            "section": "prefect",
            "case": "prefect cold",
            "seconds": cold_s,
            "baseline": "prefect default persistence",
            "baseline_seconds": base_s,
            "ratio": cold_s / base_s,
            "goal": "<= 1.2x baseline",
            "goal_met": cold_s / base_s <= 1.2,
            "note": note,
        },
        {
            "section": "prefect",
            "case": "prefect cached",
            "seconds": cached_s,
            "baseline": "prefect default persistence",
            "baseline_seconds": after_s,
            "ratio": cached_s / after_s,
            "goal": "0 task calls, 0 image reads",
            "goal_met": cached.calls == 0 and cached.pixels == 0 and cached.hashes == 0,
            "note": (
                f"task calls {cached.calls}, pixel reads {cached.pixels}, "
                f"content hashes {cached.hashes}"
            ),
        },
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for row in run():
        print(json.dumps(row))
