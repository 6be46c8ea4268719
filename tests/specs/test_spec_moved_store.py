"""Spec pipelines in a store that was moved or copied keep their results, as steps do."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from databacked.catalog import Catalog
from databacked.specs.runner import run_specs
from databacked.store import Store

STEPS = """
import os


def shout(files, output_dir):
    with open(os.environ["STEPS_LOG"], "a") as f:
        f.write("ran\\n")
    for path in files.values():
        (output_dir / path.name).write_text(path.read_text().upper())
"""

SPECS = """
pipeline: shout
input:
  pfs:
    repo: raw
    glob: "/*"
transform:
  python: {module}:shout
"""


def _project(tmp_path: Path, monkeypatch, names: str) -> Path:
    """pipelines/ with the shout transform, and ``raw/<name>.txt`` files in the store
    ``tmp_path/lab``; the transform notes each datum it runs in the returned log."""
    log = tmp_path / "steps.log"
    monkeypatch.setenv("STEPS_LOG", str(log))
    module = f"shout_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(STEPS)
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "shout.yml").write_text(SPECS.format(module=module))
    (tmp_path / "lab" / "raw").mkdir(parents=True)
    for name in names:
        (tmp_path / "lab" / "raw" / f"{name}.txt").write_text(name * 3)
    return log


def test_a_renamed_spec_store_keeps_its_datums_and_trusts_stat_again(tmp_path, monkeypatch):
    log = _project(tmp_path, monkeypatch, "abc")
    catalog = Catalog.open(tmp_path / "catalog.db")

    def run(store: Store):
        return run_specs(tmp_path / "pipelines", store=store, catalog=catalog, executor="inline")

    try:
        first = run(Store(tmp_path / "lab"))
        os.rename(tmp_path / "lab", tmp_path / "archive")
        moved = Store(tmp_path / "archive")
        hashed: list[str] = []
        real_hash = Store.hash
        monkeypatch.setattr(Store, "hash", lambda s, p: hashed.append(p) or real_hash(s, p))

        again = run(moved)
        outputs_hashed = sorted(p for p in hashed if p.startswith("shout/"))
        hashed.clear()
        third = run(moved)

        assert first.counts() == {"shout": {"ran": 3}}
        assert again.counts() == third.counts() == {"shout": {"cached": 3}}
        assert log.read_text().splitlines() == ["ran"] * 3  # only the first run computed
        assert outputs_hashed == ["shout/a.txt", "shout/b.txt", "shout/c.txt"]
        # the third run trusted the outputs' stat (the inputs, written just now, are hashed
        # on every run until they are older than the racy-stat window)
        assert [p for p in hashed if p.startswith("shout/")] == []
        assert {a.path for a in catalog.artifacts(moved.url, "shout/")} == {
            "shout/a.txt",
            "shout/b.txt",
            "shout/c.txt",
        }
        assert (tmp_path / "archive" / "shout" / "b.txt").read_text() == "BBB"
    finally:
        catalog.close()


def test_a_copied_spec_store_with_a_changed_output_reruns_that_datum(tmp_path, monkeypatch):
    log = _project(tmp_path, monkeypatch, "ab")
    catalog = Catalog.open(tmp_path / "catalog.db")
    try:
        run_specs(tmp_path / "pipelines", store=Store(tmp_path / "lab"), catalog=catalog)
        copy = tmp_path / "copy"
        shutil.copytree(tmp_path / "lab", copy)
        (copy / "shout" / "a.txt").write_text("xxx")  # same size, other bytes

        result = run_specs(tmp_path / "pipelines", store=Store(copy), catalog=catalog)

        [ran] = result.of("shout", "ran")
        assert ran.reason == "output missing"
        assert len(log.read_text().splitlines()) == 3
        assert (copy / "shout" / "a.txt").read_text() == "AAA"
    finally:
        catalog.close()
