"""Reasons name what changed, and "output modified" means modified outside databacked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import databacked as db

STEPS = """
import json
import databacked as db

@db.step(target="counts/{{name}}.json", version={version})
def count(name: str, fov: db.File) -> int:
    with open(fov) as f:
        return len(f.read()) * {version}

@db.pipeline
def counts(fovs: dict):
    return [count(name=k, fov=v) for k, v in sorted(fovs.items())]
"""


def _reasons(result: object) -> list[str]:
    return list(result.calls.reason)  # type: ignore[attr-defined]


def test_input_changed_names_the_argument_and_file(
    write_module: Callable[[str, str], ModuleType], store_url: str, catalog_db: str, tmp_path: Path
) -> None:
    mod = write_module("reasons", STEPS.format(version=1))
    where = {"store": store_url, "catalog": catalog_db, "executor": "inline"}
    fovs = {}
    for name in ("a", "b"):
        fovs[name] = str(tmp_path / f"fov_{name}.txt")
        Path(fovs[name]).write_text(name)
    db.run(mod.counts, fovs, **where)
    Path(fovs["b"]).write_text("bigger")
    result = db.run(mod.counts, fovs, **where)
    assert _reasons(result) == ["", f"input changed: fov = {fovs['b']}"]


def test_output_rewritten_by_newer_code_is_not_called_modified(
    write_module: Callable[[str, str], ModuleType], store_url: str, catalog_db: str, tmp_path: Path
) -> None:
    old, new = (write_module("reasons", STEPS.format(version=v)) for v in (1, 2))
    where = {"store": store_url, "catalog": catalog_db, "executor": "inline"}
    fovs = {"a": str(tmp_path / "fov_a.txt")}
    Path(fovs["a"]).write_text("abc")
    db.run(old.counts, fovs, **where)
    db.run(new.counts, fovs, **where)  # newer code rewrites counts/a.json
    back = db.run(old.counts, fovs, **where)
    (reason,) = _reasons(back)
    assert reason.startswith("output rewritten since by another call of count (")
    assert json.loads((Path(store_url) / "counts" / "a.json").read_text()) == 3
    # bytes changed by hand, with no record explaining them: modified
    (Path(store_url) / "counts" / "a.json").write_text("42")
    assert _reasons(db.run(old.counts, fovs, **where)) == ["output modified"]


def test_a_forgotten_call_says_so_rather_than_new(
    write_module: Callable[[str, str], ModuleType], store_url: str, catalog_db: str, tmp_path: Path
) -> None:
    mod = write_module("reasons", STEPS.format(version=1))
    fovs = {"a": str(tmp_path / "fov_a.txt")}
    Path(fovs["a"]).write_text("abc")
    db.run(mod.counts, fovs, store=store_url, catalog=catalog_db, executor="inline")
    with db.Catalog.open(catalog_db) as cat:
        assert cat.forget(step="count") == 1
    plan = db.plan(mod.counts, fovs, store=store_url, catalog=catalog_db)
    assert list(plan.calls.reason) == ["cache entry forgotten"]
