"""``db.command``: a command line as a cached step, with files in and files out."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

import databacked as db
from databacked.errors import PipelineError, StepFailed

TOOL = """\
import csv, os, sys
src, out = sys.argv[1], sys.argv[2]
with open(os.environ["COUNT_LOG"], "a") as log:
    log.write("ran\\n")
words = open(src).read().split()
if "fail" in words:
    print("cannot count a failure", file=sys.stderr)
    sys.exit(3)
print(f"counted {len(words)} words")
with open(out, "w", newline="") as f:
    csv.writer(f).writerows([["word", "n"], *[[w, len(w)] for w in words]])
"""

STEPS = """
import sys
import databacked as db

TOOL = {tool!r}

@db.step(target="lengths/{{name}}.json")
def total(name: str, table) -> int:
    return int(table["n"].sum())

@db.pipeline
def words(texts: dict):
    out = []
    for name, path in sorted(texts.items()):
        table = db.command(
            [sys.executable, TOOL, "{{text}}", "{{table}}"],
            inputs={{"text": path}},
            outputs={{"table": "tables/{{name}}.csv"}},
            params={{"name": name}},
            env={{"COUNT_LOG": {log!r}}},
        )
        out.append(total(name=name, table=table))
    return out

@db.step(target="doubled.txt", format=db.Json())
def doubled() -> str:
    return "a b c"

@db.pipeline
def chained():
    text = doubled()
    return db.command([sys.executable, TOOL, "{{text}}", "{{out}}"], inputs={{"text": text}},
                      outputs={{"out": "chained.csv"}}, env={{"COUNT_LOG": {log!r}}})
"""


@pytest.fixture
def mod(write_module: Callable[[str, str], ModuleType], tmp_path: Path) -> ModuleType:
    tool = tmp_path / "count_words.py"
    tool.write_text(TOOL)
    return write_module("cmds", STEPS.format(tool=str(tool), log=str(tmp_path / "log.txt")))


def _scratch() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("databacked-cmd-*")}


def _runs(tmp_path: Path) -> int:
    log = tmp_path / "log.txt"
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_a_command_step_is_cached_keyed_by_input_content_and_logged(
    mod: ModuleType, tmp_path: Path, store_url: str, catalog_db: str, executor: str
) -> None:
    texts = {n: tmp_path / f"{n}.txt" for n in ("a", "b")}
    texts["a"].write_text("alpha beta")
    texts["b"].write_text("gamma")
    where = {"store": store_url, "catalog": catalog_db, "executor": executor}
    args = {k: str(v) for k, v in texts.items()}
    before = _scratch()
    first = db.run(mod.words, args, **where)
    assert first.ok, first.summary()
    assert [a.load() for a in first.value] == [9, 5]
    table = pd.read_csv(Path(store_url) / "tables" / "a.csv")
    assert list(table.word) == ["alpha", "beta"]
    assert _runs(tmp_path) == 2
    if executor == "inline":  # scratch folders go once the outputs are stored
        assert _scratch() <= before
    again = db.run(mod.words, args, **where)
    assert again.counts()["cached"] == 4 and _runs(tmp_path) == 2
    texts["b"].write_text("gamma delta")
    third = db.run(mod.words, args, **where)
    assert _runs(tmp_path) == 3
    reasons = dict(zip(third.calls.step, third.calls.reason, strict=False))
    assert reasons["python"].startswith("input changed: text = ")  # named after the program
    with db.Catalog.open(catalog_db) as cat:
        row = cat.artifact_by_path(store_url, "tables/b.csv")
        assert row is not None and row.format == "csv"
        call = cat.lookup([row.key])[row.key]
    assert "counted 2 words" in call.stdout


def test_a_failing_command_fails_its_call_with_stderr(
    mod: ModuleType, tmp_path: Path, store_url: str, catalog_db: str
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("this will fail")
    where = {"store": store_url, "catalog": catalog_db, "executor": "inline"}
    result = db.run(mod.words, {"bad": str(bad)}, **where)
    assert not result.ok
    (error,) = result.calls.error.dropna()
    assert "exited with code 3: cannot count a failure" in error
    with pytest.raises(StepFailed):
        _ = result.value


def test_a_step_result_can_be_a_command_input_and_command_needs_a_pipeline(
    mod: ModuleType, store_url: str, catalog_db: str
) -> None:
    result = db.run(mod.chained, store=store_url, catalog=catalog_db, executor="inline")
    assert result.ok, result.summary()
    assert list(pd.read_csv(result.value.uri).word) == ['"a', "b", 'c"']  # the JSON text
    with pytest.raises(PipelineError, match=r"inside a @db\.pipeline"):
        db.command([sys.executable, "-c", "pass"], outputs={"x": "x.txt"})
    assert shutil.which(sys.executable)
