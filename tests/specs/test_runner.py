"""The incremental spec runner on seed 002's shape: per-site measurement, per-plate reduction."""

from __future__ import annotations

import os
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from databacked.catalog import Catalog
from databacked.engine.events import CallEvent
from databacked.specs.runner import SpecPlan, plan_specs, run_specs
from databacked.store import Store

STEPS = """
import csv

import pandas as pd
import tifffile


def measure_site(files, output_dir, plate, well, site):
    if well == "Z99":
        raise ValueError("cannot segment well Z99")
    out = output_dir / plate / f"{well}_s{site}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["channel", "mean"])
        for name, path in sorted(files.items()):
            writer.writerow([name.rsplit("_", 1)[-1][:-4], float(tifffile.imread(path).mean())])


def plate_report(files, plate):
    frames = [pd.read_csv(path).assign(site=name) for name, path in sorted(files.items())]
    return {"{plate}.csv": pd.concat(frames, ignore_index=True)}


def shout(files):
    return {"{datum}.txt": [p.read_text().upper() for p in files.values()]}
"""

SPECS = """
pipeline: measure
input:
  group:
    - repo: raw
      glob: "/(*)/(*)_s(*)_w(*).tif"
      names: [plate, well, site, channel]
      group_by: "$1/$2_s$3"
transform:
  python: {module}:measure_site
---
pipeline: plate_report
input:
  group:
    - repo: measure
      glob: "/(*)/*.csv"
      names: [plate]
      group_by: "$1"
{complete}
transform:
  python: {module}:plate_report
"""


class Project:
    """A project folder with pipelines/, a steps module and a local store."""

    def __init__(self, root: Path, complete: str = "") -> None:
        self.root = root
        self.module = f"steps_{uuid.uuid4().hex[:8]}"  # a fresh module per test
        (root / f"{self.module}.py").write_text(STEPS)
        (root / "pipelines").mkdir()
        specs = SPECS.format(module=self.module, complete=complete)
        (root / "pipelines" / "screen.yml").write_text(specs)
        self.data = root / "data"
        self.store = Store(self.data)
        self.catalog = Catalog.open(root / "catalog.db")

    def site(self, plate: str, well: str, site: int, channels: int = 2) -> None:
        for channel in range(1, channels + 1):
            image = np.full((8, 8), 10 * site + channel, dtype=np.uint16)
            path = self.data / f"raw/{plate}/{well}_s{site}_w{channel}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, image)

    def run(self, **kw: object) -> SpecPlan:
        kw.setdefault("executor", "inline")
        return run_specs(self.root / "pipelines", store=self.store, catalog=self.catalog, **kw)

    def plan(self) -> SpecPlan:
        return plan_specs(self.root / "pipelines", store=self.store, catalog=self.catalog)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = Project(tmp_path)
    yield p
    p.catalog.close()


def _counts(result: SpecPlan, pipeline: str) -> dict[str, int]:
    return result.counts().get(pipeline, {})


def test_first_run_computes_all_and_second_run_nothing(project: Project) -> None:
    project.site("plate1", "A01", 1)
    project.site("plate1", "A01", 2)

    events: list[CallEvent] = []
    first = project.run(progress=events.append)
    second = project.run()

    assert first.ok, first.rows
    assert [(e.step, e.status) for e in events if e.step == "plate_report"] == [
        ("plate_report", "planned"),
        ("plate_report", "running"),
        ("plate_report", "ran"),
    ]
    assert _counts(first, "measure") == {"ran": 2}
    assert _counts(first, "plate_report") == {"ran": 1}
    assert _counts(second, "measure") == {"cached": 2}
    assert _counts(second, "plate_report") == {"cached": 1}
    report = pd.read_csv(project.store.local_path("plate_report/plate1.csv"))
    assert (
        sorted(report["site"])
        == ["measure/plate1/A01_s1.csv"] * 2 + ["measure/plate1/A01_s2.csv"] * 2
    )
    assert sorted(report["mean"]) == [11.0, 12.0, 21.0, 22.0]
    [row] = project.catalog.lineage(project.store.url, "measure/plate1/A01_s1.csv")[:1]
    assert row.call is not None
    assert row.call.params["attributes"] == {"plate": "plate1", "well": "A01", "site": "1"}


def test_a_new_site_runs_only_that_site_and_its_plate(project: Project) -> None:
    project.site("plate1", "A01", 1)
    project.site("plate2", "B01", 1)
    project.run()
    project.site("plate1", "A02", 1)

    plan = project.plan()
    result = project.run()

    assert _counts(plan, "measure") == {"cached": 2, "new": 1}
    [waiting] = plan.of("plate_report", "waiting")
    assert waiting.reason.startswith("waiting: 1 datum")
    assert _counts(result, "measure") == {"cached": 2, "ran": 1}
    assert _counts(result, "plate_report") == {"cached": 1, "ran": 1}
    [ran] = result.of("plate_report", "ran")
    assert ran.attributes == {"plate": "plate1"}


def test_deleted_site_removes_its_outputs_and_reruns_the_plate(project: Project) -> None:
    project.site("plate1", "A01", 1)
    project.site("plate1", "A01", 2)
    project.run()
    for channel in (1, 2):
        (project.data / f"raw/plate1/A01_s2_w{channel}.tif").unlink()

    plan = project.plan()
    result = project.run()
    again = project.run()

    [gone] = plan.of("measure", "removed")
    assert gone.outputs == ("plate1/A01_s2.csv",)
    assert gone.attributes == {"plate": "plate1", "well": "A01", "site": "2"}
    assert not project.store.exists("measure/plate1/A01_s2.csv")
    assert project.store.exists("measure/plate1/A01_s1.csv")
    assert _counts(result, "measure") == {"cached": 1, "removed": 1}
    assert _counts(result, "plate_report") == {"ran": 1}
    assert len(pd.read_csv(project.store.local_path("plate_report/plate1.csv"))) == 2
    assert _counts(again, "measure") == {"cached": 1}
    # the catalog keeps the history of the removed output
    assert project.catalog.artifact_by_path(project.store.url, "measure/plate1/A01_s2.csv")


def test_removed_then_readded_files_compute_nothing_again(project: Project) -> None:
    project.site("plate1", "A01", 1)
    project.site("plate1", "A01", 2)
    project.run()
    saved = {}
    for channel in (1, 2):
        path = project.data / f"raw/plate1/A01_s2_w{channel}.tif"
        saved[path] = path.read_bytes()
        path.unlink()
    project.run()
    for path, data in saved.items():
        path.write_bytes(data)

    result = project.run()
    again = project.run()

    [restored] = [r for r in result.of("measure") if r.reason]
    assert restored.status == "cached"
    assert restored.reason == "outputs restored (computed before)"
    assert _counts(result, "measure") == {"cached": 2}
    assert project.store.exists("measure/plate1/A01_s2.csv")
    # the plate is back to its two-site state: the report made then comes back too
    [report] = result.of("plate_report")
    assert (report.status, report.reason) == ("cached", "outputs restored (computed before)")
    assert len(pd.read_csv(project.store.local_path("plate_report/plate1.csv"))) == 4
    assert _counts(again, "measure") == {"cached": 2}
    assert _counts(again, "plate_report") == {"cached": 1}


def test_a_changed_image_reruns_its_site_and_plate(project: Project) -> None:
    project.site("plate1", "A01", 1)
    project.site("plate1", "A01", 2)
    project.run()
    tifffile.imwrite(project.data / "raw/plate1/A01_s1_w1.tif", np.zeros((8, 8), "u2"))

    result = project.run()

    [changed] = result.of("measure", "ran")
    assert changed.reason == "input changed"
    assert _counts(result, "plate_report") == {"ran": 1}


def test_edited_transform_code_reruns_its_pipeline(project: Project) -> None:
    project.site("plate1", "A01", 1)
    project.run()
    module = project.root / f"{project.module}.py"
    module.write_text(module.read_text().replace('["channel", "mean"]', '["channel", "avg"]'))

    result = project.run()

    [changed] = result.of("measure")
    assert (changed.status, changed.reason) == ("ran", "code changed")
    assert b"avg" in project.store.read_bytes("measure/plate1/A01_s1.csv")


def test_plate_with_declared_count_waits_until_complete(tmp_path: Path) -> None:
    complete = "      complete: {count: 3}"
    project = Project(tmp_path, complete=complete)
    project.site("plate1", "A01", 1)
    project.site("plate1", "A01", 2)

    early = project.run()
    written_early = project.store.exists("plate_report/plate1.csv")
    project.site("plate1", "A01", 3)
    complete_run = project.run()
    project.catalog.close()

    [waiting] = early.of("plate_report")
    assert waiting.status == "waiting"
    assert "incomplete" in waiting.reason and "2 of 3" in waiting.reason
    assert not written_early
    assert _counts(complete_run, "plate_report") == {"ran": 1}
    assert project.store.exists("plate_report/plate1.csv")


def test_plate_with_a_manifest_waits_for_every_listed_site(tmp_path: Path) -> None:
    complete = '      complete: {manifest: {repo: manifests, path: "{plate}.txt"}}'
    project = Project(tmp_path, complete=complete)
    manifest = b"# sites\nplate1/A01_s1.csv\nplate1/B02_s1.csv\n"
    project.store.put_bytes("manifests/plate1.txt", manifest)
    project.site("plate1", "A01", 1)

    early = project.run()
    project.site("plate1", "B02", 1)
    later = project.run()
    project.catalog.close()

    [waiting] = early.of("plate_report")
    assert waiting.status == "waiting"
    assert "1 of 2 members listed in manifest manifests/plate1.txt" in waiting.reason
    assert _counts(later, "plate_report") == {"ran": 1}


def test_failed_site_isolated_and_its_plate_waits(project: Project) -> None:
    project.site("plate1", "A01", 1)
    project.site("plate1", "Z99", 1)
    project.site("plate2", "A01", 1)

    result = project.run()

    assert not result.ok
    [failed] = result.of("measure", "failed")
    assert "cannot segment well Z99" in failed.error
    assert _counts(result, "measure") == {"failed": 1, "ran": 2}
    by_plate = {r.attributes["plate"]: r for r in result.of("plate_report")}
    assert by_plate["plate1"].status == "waiting"
    assert "not done" in by_plate["plate1"].reason
    assert by_plate["plate2"].status == "ran"
    assert project.plan().of("measure", "new")[0].reason == "previously failed"


def test_processes_executor(project: Project) -> None:
    project.site("plate1", "A01", 1)
    project.site("plate1", "A02", 1)

    result = project.run(executor="processes", workers=2)

    assert result.ok, [r.error for r in result.rows]
    assert _counts(result, "measure") == {"ran": 2}
    assert project.store.exists("plate_report/plate1.csv")


def _text_project(tmp_path: Path, spec: str) -> tuple[Path, Store, Catalog]:
    store = Store(tmp_path / "data")
    store.put_bytes("texts/a.txt", b"hello\n")
    store.put_bytes("texts/b.txt", b"world\n")
    store.put_bytes("texts/copy_of_a.txt", b"hello\n")
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yml").write_text(textwrap.dedent(spec))
    return tmp_path / "pipelines", store, Catalog.open(tmp_path / "catalog.db")


def test_cmd_transform_and_its_failure(tmp_path: Path) -> None:
    folder, store, catalog = _text_project(
        tmp_path,
        """
        pipeline: upper
        input: {repo: texts, glob: "/(*).txt"}
        transform:
          cmd: [sh, -c, "tr a-z A-Z < {input_dir}/texts/{1}.txt > {output_dir}/{1}.up"]
        ---
        pipeline: broken
        input: {repo: texts, glob: "/(*).txt"}
        transform:
          cmd: [sh, -c, "echo 'bad input {1}' >&2; exit 4"]
        """,
    )
    with catalog:
        result = run_specs(folder, store=store, catalog=catalog)

    assert store.read_bytes("upper/b.up") == b"WORLD\n"
    assert _counts(result, "upper") == {"ran": 3}
    errors = sorted(r.error for r in result.of("broken", "failed"))
    assert len(errors) == 3
    assert "exited with code 4" in errors[0] and "bad input a" in errors[0]


def test_identical_datums_are_computed_once(tmp_path: Path) -> None:
    module = f"shout_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(STEPS)
    folder, store, catalog = _text_project(
        tmp_path,
        f"""
        pipeline: loud
        key_by: content
        input: {{repo: texts, glob: "/*"}}
        transform:
          python: {module}:shout
        """,
    )
    with catalog:
        result = run_specs(folder, store=store, catalog=catalog)
        again = run_specs(folder, store=store, catalog=catalog)

    assert _counts(result, "loud") == {"ran": 2, "cached": 1}
    [reused] = result.of("loud", "cached")
    assert reused.reason.startswith("identical to datum")
    assert _counts(again, "loud") == {"cached": 3}


def test_many_small_datums_run_in_batches_with_failures_isolated(tmp_path: Path) -> None:
    # 12 datums on one worker go as chunks of 3 (submit_batch); one failing item fails alone
    folder, store, catalog = _text_project(
        tmp_path,
        """
        pipeline: sizes
        input: {repo: many, glob: "/(*).txt"}
        transform:
          cmd: [sh, -c, "test {1} != n07 && wc -c < {input_dir}/many/{1}.txt > {output_dir}/{1}"]
        """,
    )
    for i in range(12):
        store.put_bytes(f"many/n{i:02d}.txt", b"x" * i)
    with catalog:
        result = run_specs(folder, store=store, catalog=catalog, executor="threads", workers=1)

    assert _counts(result, "sizes") == {"ran": 11, "failed": 1}
    [failed] = result.of("sizes", "failed")
    assert "exited with code 1" in failed.error
    assert int(store.read_bytes("sizes/n05").strip()) == 5
    assert not store.exists("sizes/n07")


def test_incremental_runs_on_each_catalog_database(catalog_url: str, tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.catalog.close()
    project.catalog = Catalog.open(catalog_url)
    # server catalogs are shared by the session: a store of its own keeps this test apart
    project.data = tmp_path / f"data-{uuid.uuid4().hex[:8]}"
    project.store = Store(project.data)
    project.site("plate1", "A01", 1)

    with project.catalog:
        first = project.run()
        project.site("plate1", "A02", 1)
        second = project.run()

    assert _counts(first, "measure") == {"ran": 1}
    assert _counts(second, "measure") == {"cached": 1, "ran": 1}
    assert _counts(second, "plate_report") == {"ran": 1}


def test_object_store_repos(s3_bucket: str, tmp_path: Path) -> None:
    store = Store(f"{s3_bucket}/screen")
    for name, text in {"a": b"hello\n", "b": b"world\n"}.items():
        store.put_bytes(f"texts/{name}.txt", text)
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yml").write_text(
        textwrap.dedent(
            """
            pipeline: upper
            input: {repo: texts, glob: "/(*).txt"}
            transform:
              cmd: [sh, -c, "tr a-z A-Z < {input_dir}/texts/{1}.txt > {output_dir}/{1}.up"]
            """
        )
    )
    with Catalog.open(tmp_path / "catalog.db") as catalog:
        first = run_specs(tmp_path / "pipelines", store=store, catalog=catalog)
        store.delete("texts/a.txt")
        second = run_specs(tmp_path / "pipelines", store=store, catalog=catalog)

    assert _counts(first, "upper") == {"ran": 2}
    assert _counts(second, "upper") == {"cached": 1, "removed": 1}
    assert store.read_bytes("upper/b.up") == b"WORLD\n"
    assert not store.exists("upper/a.up")


UPPER = """
pipeline: upper
input: {repo: texts, glob: "/(*).txt"}
transform:
  cmd: [sh, -c, "tr a-z A-Z < {input_dir}/texts/{1}.txt > {output_dir}/{1}.up"]
"""


def test_leases_keep_two_drivers_from_computing_a_datum_twice(tmp_path: Path) -> None:
    folder, store, catalog = _text_project(tmp_path, UPPER)
    with catalog:
        run_specs(folder, store=store, catalog=catalog)
        store.put_bytes("texts/c.txt", b"new\n")
        [new] = plan_specs(folder, store=store, catalog=catalog).of("upper", "new")

        catalog.acquire([new.key], "other-driver", 60.0, pid=os.getpid())  # alive: wait
        busy = run_specs(folder, store=store, catalog=catalog)
        catalog.release(None, "other-driver")
        written_while_busy = store.exists("upper/c.up")

        ghost = subprocess.Popen(["true"])
        ghost.wait()
        catalog.acquire([new.key], "killed-driver", 60.0, pid=ghost.pid)  # dead: taken over
        taken = run_specs(folder, store=store, catalog=catalog)

    [waiting] = busy.of("upper", "waiting")
    assert waiting.reason == "waiting: running in another driver"
    assert not written_while_busy
    assert _counts(taken, "upper") == {"cached": 3, "ran": 1}
    assert store.read_bytes("upper/c.up") == b"NEW\n"


def test_a_datum_finished_by_another_driver_meanwhile_is_not_run_again(tmp_path: Path) -> None:
    folder, store, catalog = _text_project(tmp_path, UPPER)
    nested: list[SpecPlan] = []

    def other_driver_runs_first(event: CallEvent) -> None:
        # called while this driver is between its lookup and its lease
        if event.status == "planned" and not nested:
            with Catalog.open(tmp_path / "catalog.db") as other:
                nested.append(run_specs(folder, store=store, catalog=other))

    with catalog:
        run_specs(folder, store=store, catalog=catalog)
        store.put_bytes("texts/c.txt", b"new\n")
        result = run_specs(folder, store=store, catalog=catalog, progress=other_driver_runs_first)

    assert _counts(nested[0], "upper") == {"cached": 3, "ran": 1}
    [late] = [r for r in result.of("upper") if r.reason]
    assert (late.status, late.reason) == ("cached", "computed by another driver")
    assert late.outputs == ("c.up",)


def test_an_interrupted_run_keeps_what_finished(tmp_path: Path) -> None:
    folder, store, catalog = _text_project(tmp_path, UPPER)
    finished: list[str] = []

    def interrupt_after_first(event: CallEvent) -> None:
        if event.status == "ran":
            finished.append(event.key)
            if len(finished) == 2:
                raise KeyboardInterrupt

    with catalog:
        with pytest.raises(KeyboardInterrupt):
            run_specs(folder, store=store, catalog=catalog, progress=interrupt_after_first)
        resumed = run_specs(folder, store=store, catalog=catalog)
        runs = [r.status for r in catalog.runs()]

    # both datums that had finished (the second while its event was being handled) are kept
    assert _counts(resumed, "upper") == {"cached": 2, "ran": 1}
    assert runs == ["ok", "error"]  # newest first
    assert {r.key for r in resumed.of("upper", "cached")} == set(finished)


def test_spec_runs_go_through_the_engine_leases_and_provenance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the same dispatcher as db.run: the lease_ttl setting, git state of the project folder
    monkeypatch.setenv("DATABACKED_LEASE_TTL", "123")
    folder, store, catalog = _text_project(tmp_path, UPPER)
    for args in (["init", "-q"], ["add", "pipelines"], ["commit", "-q", "-m", "specs"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path, check=True, capture_output=True,
        )  # fmt: skip
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.strip()
    leases: list[float] = []

    def look_at_leases(event: CallEvent) -> None:
        if event.status == "running":
            with Catalog.open(tmp_path / "catalog.db") as other:
                for lease in other.leases_of_others([event.key]).values():
                    leases.append(lease.expires - lease.acquired)

    with catalog:
        result = run_specs(folder, store=store, catalog=catalog, progress=look_at_leases)
        [run] = catalog.runs()

    assert result.ok
    assert leases and all(abs(ttl - 123) < 1 for ttl in leases)
    assert (run.git_commit, run.git_dirty) == (commit, False)
    assert run.config["lease_ttl"] == 123
    assert "databacked" in run.packages
