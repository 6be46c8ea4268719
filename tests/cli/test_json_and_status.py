"""``--json`` on plan, status, ls, show and lineage; ``status`` after an all-cached run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from databacked.cli.app import app

PIPELINE = """
import databacked as db

@db.step(target="squares/{i}.json")
def square(i: int) -> int:
    return i * i

@db.step(target="total.json")
def total(parts: list) -> int:
    return sum(parts)

@db.pipeline
def numbers(n: int = 3):
    return total(parts=square.map(i=list(range(n))))
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("DATABACKED_STORE", "DATABACKED_CATALOG", "DATABACKED_EXECUTOR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "pipes.py").write_text(PIPELINE, encoding="utf-8")
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout


def as_json(*args: str) -> Any:
    code, out = invoke(*args, "--json")
    assert code == 0, out
    return json.loads(out)


def test_status_after_an_all_cached_run_shows_cached_counts(project: Path) -> None:
    assert invoke("run", "pipes.py:numbers", "--executor", "inline")[0] == 0
    assert invoke("run", "pipes.py:numbers", "--executor", "inline")[0] == 0
    code, out = invoke("status")
    assert code == 0
    square = next(line for line in out.splitlines() if "square" in line and "│" in line)
    assert [c.strip() for c in square.strip("│ ").split("│")] == ["square", "3"]
    assert "cached" in out.split("Calls of run")[1]
    status = as_json("status")
    assert status["steps"] == {"square": {"cached": 3}, "total": {"cached": 1}}
    assert status["runs"][0]["counts"]["cached"] == 4 and status["failures"] == []


def test_plan_ls_show_and_lineage_speak_json(project: Path) -> None:
    plan = as_json("plan", "pipes.py:numbers")
    assert {c["status"] for c in plan["calls"]} == {"run", "waiting"}
    assert invoke("run", "pipes.py:numbers", "--executor", "inline")[0] == 0
    plan = as_json("plan", "pipes.py:numbers", "-p", "n=4")
    assert plan["counts"] == {"cached": 3, "run": 1, "waiting": 1}
    listing = as_json("ls", "squares/")
    assert sorted(a["path"] for a in listing) == [f"squares/{i}.json" for i in range(3)]
    assert {a["step"] for a in listing} == {"square"} and all(a["hash"] for a in listing)
    shown = as_json("show", "total.json")
    assert shown["artifact"]["path"] == "total.json" and shown["call"]["step"] == "total"
    call = as_json("show", shown["call"]["key"][:12])["call"]
    assert call["step"] == "total" and len(call["inputs"]) == 3
    lineage = as_json("lineage", "total.json")
    assert lineage[0]["step"] == "total" and lineage[0]["depth"] == 0
    assert sorted(r["path"] for r in lineage if r["depth"] == 1) == [
        f"squares/{i}.json" for i in range(3)
    ]
