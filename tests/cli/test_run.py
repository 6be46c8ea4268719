"""``run`` and ``plan`` end to end on the real engine, store and SQLite catalog."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from databacked.cli.app import app

PIPELINE = """
import databacked as db


@db.step(target="squares/{i}.json")
def square(i: int, fail: bool) -> dict:
    if fail and i == 1:
        raise ValueError(f"cannot square {i} today")
    return {"i": i, "sq": i * i}


@db.step(target="total.json")
def total(parts: list) -> dict:
    return {"total": sum(p["sq"] for p in parts)}


@db.pipeline
def numbers(n: int = 3, fail: bool = False):
    squares = square.map(i=list(range(n)), fail=[fail] * n)
    return total(parts=squares)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The project's own modules: one that fails to import fails the test, never skips it.
    import databacked.engine.api
    import databacked.formats.registry  # noqa: F401

    monkeypatch.chdir(tmp_path)
    for var in ("DATABACKED_STORE", "DATABACKED_CATALOG", "DATABACKED_EXECUTOR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "pipes.py").write_text(PIPELINE, encoding="utf-8")
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def summary_row(output: str, step: str) -> list[str]:
    """The cells of a step's row in the run summary table (ran, cached, failed, skipped, total)."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃|").split("│")]
        if cells and cells[0] == step:
            return cells[1:]
    raise AssertionError(f"no summary row for {step!r} in:\n{output}")


def test_run_then_everything_cached(project: Path) -> None:
    first = invoke("run", "pipes.py:numbers", "--executor", "inline")
    assert first.exit_code == 0, first.output
    assert summary_row(first.output, "square") == ["3", "", "", "", "3"]
    assert json.loads((project / "data" / "total.json").read_text()) == {"total": 5}

    second = invoke("run", "pipes.py:numbers", "--executor", "inline")
    assert second.exit_code == 0, second.output
    assert summary_row(second.output, "square") == ["", "3", "", "", "3"]
    assert summary_row(second.output, "total") == ["", "1", "", "", "1"]


def test_param_adds_only_new_calls(project: Path) -> None:
    assert invoke("run", "pipes.py:numbers", "--executor", "threads").exit_code == 0
    more = invoke("run", "pipes.py:numbers", "--param", "n=4", "--executor", "threads")
    assert more.exit_code == 0, more.output
    assert summary_row(more.output, "square") == ["1", "3", "", "", "4"]
    assert json.loads((project / "data" / "total.json").read_text()) == {"total": 14}


def test_failed_call_exits_1_and_says_why(project: Path) -> None:
    result = invoke("run", "pipes.py:numbers", "-p", "fail=true", "--executor", "inline")
    assert result.exit_code == 1, result.output
    assert "square failed" in result.output
    assert "cannot square 1 today" in result.output
    assert (project / "data" / "squares" / "0.json").exists()
    assert not (project / "data" / "total.json").exists()
    status = invoke("status")
    assert status.exit_code == 0, status.output
    assert "cannot square 1 today" in status.output


def test_plan_before_and_after(project: Path) -> None:
    before = invoke("plan", "pipes.py:numbers")
    assert before.exit_code == 0, before.output
    assert "cached" not in before.output
    assert "square" in before.output
    assert not (project / "data" / "total.json").exists()
    assert invoke("run", "pipes.py:numbers", "--executor", "inline").exit_code == 0
    after = invoke("run", "pipes.py:numbers", "--dry-run")
    assert after.exit_code == 0, after.output
    assert "4 cached" in after.output


def test_unknown_param_is_refused_before_running(project: Path) -> None:
    result = invoke("run", "pipes.py:numbers", "--param", "m=2")
    assert result.exit_code == 2
    assert "has no parameter 'm'" in result.output
    assert "Traceback" not in result.output
    assert not (project / "data").exists()


def test_console_script_with_processes(project: Path) -> None:
    databacked = Path(sys.executable).with_name("databacked")
    cmd = [str(databacked), "run", "pipes.py:numbers", "--executor", "processes", "--workers", "2"]
    first = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads((project / "data" / "total.json").read_text()) == {"total": 5}
    ls = subprocess.run(
        [str(databacked), "ls"], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert ls.returncode == 0, ls.stderr
    assert "total.json" in ls.stdout


def test_verify_forget_and_rerun_after_a_run(project: Path) -> None:
    assert invoke("run", "pipes.py:numbers", "--executor", "inline").exit_code == 0
    assert invoke("verify").exit_code == 0
    (project / "data" / "squares" / "0.json").write_text('{"i": 0, "sq": 99}')
    corrupt = invoke("verify")
    assert corrupt.exit_code == 1
    assert "corrupt  squares/0.json" in corrupt.output
    # The modified output is made again; nothing else runs.
    again = invoke("run", "pipes.py:numbers", "--executor", "inline")
    assert again.exit_code == 0, again.output
    assert summary_row(again.output, "square") == ["1", "2", "", "", "3"]
    assert invoke("verify").exit_code == 0
    forgot = invoke("forget", "total")
    assert "Forgot 1 cached call." in forgot.output
    last = invoke("run", "pipes.py:numbers", "--executor", "inline")
    assert summary_row(last.output, "total") == ["1", "", "", "", "1"]
    assert summary_row(last.output, "square") == ["", "3", "", "", "3"]


def test_dotted_module_reference_and_shadowing_file_name(project: Path) -> None:
    (project / "my_numbers.py").write_text(PIPELINE, encoding="utf-8")
    dotted = invoke("run", "my_numbers:numbers", "--executor", "inline")
    assert dotted.exit_code == 0, dotted.output
    assert summary_row(dotted.output, "square") == ["3", "", "", "", "3"]
    # A pipeline file named like a stdlib module must not replace it.
    (project / "json.py").write_text(PIPELINE, encoding="utf-8")
    shadow = invoke("run", "json.py:numbers", "--executor", "inline")
    assert shadow.exit_code == 0, shadow.output
    assert summary_row(shadow.output, "square") == ["", "3", "", "", "3"]
    assert json.loads('{"still": "the stdlib"}') == {"still": "the stdlib"}


def test_run_with_verify_rehashes_cached_outputs(project: Path) -> None:
    import os

    assert invoke("run", "pipes.py:numbers", "--executor", "inline").exit_code == 0
    # Change the bytes behind the stamp's back: same size, same inode, mtime restored.
    target = project / "data" / "squares" / "2.json"
    before = target.stat()
    original = target.read_bytes()
    target.write_bytes(original.replace(b'"sq": 4', b'"sq": 5'))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    trusted = invoke("run", "pipes.py:numbers", "--executor", "inline")
    assert summary_row(trusted.output, "square") == ["", "3", "", "", "3"]
    checked = invoke("run", "pipes.py:numbers", "--executor", "inline", "--verify")
    assert checked.exit_code == 0, checked.output
    assert summary_row(checked.output, "square") == ["1", "2", "", "", "3"]
    assert target.read_bytes() == original
