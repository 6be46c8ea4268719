"""The small things of a first hour: tracebacks, live output, did-you-mean, gc's sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from databacked.cli.app import app

PIPELINE = """\
import databacked as db

@db.step(target="out/{i}.json")
def shout(i: int) -> int:
    print(f"hello from {i}")
    if i == 1:
        raise ValueError("one is too loud")
    return i

@db.step(target="total.json")
def normalize(xs: list) -> int:
    return sum(xs)

@db.pipeline
def loud(n: int = 2):
    return shout.map(i=list(range(n)))

@db.pipeline
def quiet():
    return normalize(xs=shout.map(i=[0, 2]))

@db.step(target="img.png")
def picture():
    import numpy as np
    return np.linspace(0, 1, 64).reshape(8, 8)

@db.step(target="mean.json")
def mean(image) -> float:
    return float(image.mean())

@db.pipeline
def lossy():
    return mean(image=picture())
"""
DATABACKED = Path(sys.executable).with_name("databacked")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("DATABACKED_STORE", "DATABACKED_CATALOG", "DATABACKED_EXECUTOR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "pipes.py").write_text(PIPELINE, encoding="utf-8")
    return tmp_path


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABACKED_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "src"), *sys.path])
    return subprocess.run(
        [str(DATABACKED), *args],
        cwd=project,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.mark.parametrize("executor", ["processes", "subprocess"])
def test_live_output_names_its_call_and_tracebacks_the_users_line(
    project: Path, executor: str
) -> None:
    proc = cli(project, "run", "pipes.py:loud", "--executor", executor)
    assert proc.returncode == 1, proc.stderr
    lines = (proc.stdout + proc.stderr).splitlines()
    if executor == "processes":  # a subprocess worker's output comes back in its answer
        assert any(line.startswith("[shout ") and "] hello from 0" in line for line in lines)
    status = json.loads(CliRunner().invoke(app, ["status", "--json"]).stdout)
    (failure,) = status["failures"]
    shown = CliRunner().invoke(app, ["show", failure["key"], "--json"]).stdout
    call = json.loads(shown)["call"]
    assert f'{project / "pipes.py"}", line 7, in shout' in call["traceback"]
    assert "<dynamic-code>" not in call["traceback"]
    assert call["stdout"].strip() == "hello from 1"  # the catalog keeps it unprefixed


def test_unknown_names_get_a_suggestion_and_exit_2(project: Path) -> None:
    code, out = invoke("run", "pipes.py:loud", "--executor", "proceses")
    assert code == 2 and "Unknown executor 'proceses' (did you mean 'processes'?)" in out
    code, out = invoke("run", "pipes.py:lodu")
    assert code == 2 and "defines no 'lodu' (did you mean 'loud'?)" in out
    assert invoke("run", "pipes.py:quiet", "--executor", "inline")[0] == 0
    code, out = invoke("forget", "normalise")
    assert code == 2
    assert "No step 'normalise' in the catalog (did you mean 'normalize'?)" in out
    assert "Nothing was forgotten" in out
    code, out = invoke("forget", "normalize")
    assert code == 0 and "Forgot 1 cached call." in out


def test_gc_dry_run_says_what_it_looked_at(project: Path) -> None:
    assert invoke("run", "pipes.py:quiet", "--executor", "inline")[0] == 0
    code, out = invoke("gc", "--dry-run")
    assert code == 0
    assert " ".join(out.split()) == (
        "Nothing unreferenced to remove in .databacked/objects/; the catalog references 3 "
        "files in this store, 0 of them looked at and kept; files outside it are removed "
        "only with --everywhere."
    )


def test_a_lossy_input_is_one_warning_line(project: Path) -> None:
    code, out = invoke("run", "pipes.py:lossy", "--executor", "inline")
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith("Warning:")]
    assert len(lines) == 1
    assert (
        "Step 'mean' reads its input 'image' back from the files step 'picture' wrote" in (lines[0])
    )
