"""Resources: the calls running at once never ask for more than the capacities, and a call
asking for more than any capacity is refused before anything runs."""

from __future__ import annotations

import itertools
import os
import textwrap
from pathlib import Path

import pytest

import databacked as db
from databacked.catalog import Catalog
from databacked.engine.resources import Pool, parse
from databacked.errors import PipelineError
from databacked.specs.runner import run_specs
from databacked.store import Store

STEPS = """
import os
import time
import databacked as db


def _stamp(x, what):
    with open(os.environ["TIMES_FILE"], "a") as f:
        f.write(f"{x} {what} {time.time()!r}\\n")


@db.step(target="gpu/{x}.json", resources={"gpus": 1, "cpus": 1})
def on_gpu(x: int) -> int:
    _stamp(x, "start")
    time.sleep(0.15)
    _stamp(x, "end")
    return x


@db.step(target="big/{x}.json", resources={"gpus": 2})
def two_gpus(x: int) -> int:
    _stamp(x, "start")
    return x


@db.pipeline
def gpus(n: int = 4):
    return on_gpu.map(x=list(range(n)))


@db.pipeline
def too_big():
    return two_gpus.map(x=[1, 2])
"""


def _intervals(path: Path) -> list[tuple[float, float]]:
    marks: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        x, what, at = line.split()
        marks.setdefault(x, {})[what] = float(at)
    return sorted((m["start"], m["end"]) for m in marks.values())


@pytest.fixture
def steps(write_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TIMES_FILE", str(tmp_path / "times.txt"))
    return write_module("gpu_steps", STEPS)


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_a_one_gpu_step_never_overlaps_itself_on_one_gpu(
    steps, store_url: str, catalog_db: str, tmp_path: Path, executor: str
) -> None:
    result = db.run(
        steps.gpus,
        store=store_url,
        catalog=catalog_db,
        executor=executor,
        workers=4,
        resources={"gpus": 1},
    )
    assert result.counts()["ran"] == 4
    spans = _intervals(tmp_path / "times.txt")
    assert len(spans) == 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start  # one call at a time: the next starts after the last ended


def test_a_step_asking_more_than_any_capacity_fails_before_running(
    steps, store_url: str, catalog_db: str, tmp_path: Path
) -> None:
    with pytest.raises(PipelineError, match=r"Step two_gpus asks for gpus=2 but at most 1"):
        db.run(
            steps.too_big,
            store=store_url,
            catalog=catalog_db,
            executor="threads",
            resources={"gpus": 1},
        )
    assert not (tmp_path / "times.txt").exists()


def test_spec_resource_requests_share_the_capacity(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    for i in range(3):
        store.put_bytes(f"texts/t{i}.txt", b"x")
    (tmp_path / "pipelines").mkdir()
    times = tmp_path / "times.txt"
    (tmp_path / "pipelines" / "p.yml").write_text(
        textwrap.dedent(
            f"""
            pipeline: stamp
            resource_requests: {{gpu: 1, memory: 1GB}}
            input: {{repo: texts, glob: "/(*).txt"}}
            transform:
              cmd: [sh, -c, "echo {{1}} start $(date +%s.%N) >> {times}; sleep 0.15;
                    echo {{1}} end $(date +%s.%N) >> {times}; touch {{output_dir}}/{{1}}"]
            """
        )
    )
    with Catalog.open(tmp_path / "catalog.db") as catalog:
        result = run_specs(
            tmp_path / "pipelines",
            store=store,
            catalog=catalog,
            executor="threads",
            workers=3,
            resources={"gpus": 1},
        )
    assert result.counts() == {"stamp": {"ran": 3}}
    spans = _intervals(times)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start


def test_capacities_and_requests_are_parsed() -> None:
    assert parse({"cpu": 2, "memory": "4GB", "gpu": 1}) == {
        "cpus": 2.0,
        "memory": 4e9,
        "gpus": 1.0,
    }
    assert parse({"memory": "512MiB"}) == {"memory": 512 * 1024**2}
    with pytest.raises(PipelineError, match="unknown resource 'tpus'"):
        parse({"tpus": 1}, "Step s")
    with pytest.raises(PipelineError, match="memory='lots'"):
        parse({"memory": "lots"}, "Step s")
    pool = Pool({"gpus": 1})
    assert pool.capacity["cpus"] == float(os.cpu_count() or 1)
    assert pool.fits({"gpus": 1}) and not pool.fits({"gpus": 2})
