"""``spec check`` runs what a run would import; specs find their project; missing repos wait."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from databacked.cli.app import app

SPEC = """
pipeline: measure
input:
  pfs:
    repo: raw
    glob: "/(?P<plate>*)/*.txt"
transform:
  {transform}
"""
STEPS = """
def measure(files, plate):
    return {f"{plate}.txt": str(len(files))}

def needs_more(files, plate, threshold):
    return {}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("DATABACKED_STORE", "DATABACKED_CATALOG"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "lab_steps.py").write_text(STEPS)
    return tmp_path


def _spec(folder: Path, transform: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "measure.yml").write_text(textwrap.dedent(SPEC.format(transform=transform)))
    return folder


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_check_imports_the_transform_and_suggests_a_name(project: Path) -> None:
    _spec(project / "pipelines", "python: lab_steps:measure")
    code, out = _invoke("spec", "check", "pipelines/")
    assert code == 0 and "ok measure" in out
    _spec(project / "pipelines", "python: lab_steps:mesure")
    code, out = _invoke("spec", "check", "pipelines/")
    assert code == 2
    assert "module 'lab_steps' has no function 'mesure' (did you mean 'lab_steps:measure'?)" in out
    _spec(project / "pipelines", "python: lab_stepz:measure")
    code, out = _invoke("spec", "check", "pipelines/")
    assert code == 2 and "cannot import module 'lab_stepz'" in out


def test_check_refuses_a_signature_a_datum_cannot_fill(project: Path) -> None:
    _spec(project / "pipelines", "python: lab_steps:needs_more")
    code, out = _invoke("spec", "check", "pipelines/")
    assert code == 2
    assert "needs 'threshold', which a datum does not give" in out
    assert "measure.yml, line" in out


def test_check_warns_when_a_command_is_not_on_path(project: Path) -> None:
    _spec(project / "pipelines", "cmd: [no-such-tool-xyz, '{input_dir}']")
    code, out = _invoke("spec", "check", "pipelines/")
    assert code == 0
    assert "the command 'no-such-tool-xyz' is not on this machine's PATH" in out
    _spec(project / "pipelines", "cmd: [cp, -r, '{input_dir}', '{output_dir}']")
    code, out = _invoke("spec", "check", "pipelines/")
    assert code == 0 and "not on this machine's PATH" not in out


def test_specs_in_any_folder_import_from_the_project_and_wait_for_missing_repos(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _spec(project / "specs", "python: lab_steps:measure")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the project: the specs folder's parent is
    flags = ("--store", str(project / "data"), "--catalog", f"sqlite:///{project / 'c.db'}")
    code, out = _invoke("plan", str(project / "specs"), *flags)
    assert code == 0, out
    assert "repo 'raw' does not exist" in out and "wait until files arrive" in out
    assert "No datums yet" in out
    (project / "data" / "raw" / "p1").mkdir(parents=True)
    (project / "data" / "raw" / "p1" / "a.txt").write_text("a")
    code, out = _invoke("run", str(project / "specs"), *flags, "--executor", "inline")
    assert code == 0, out
    assert (project / "data" / "measure" / "p1.txt").read_text().strip() == '"1"'
