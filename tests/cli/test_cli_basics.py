"""The CLI's own behaviour: init, version, help, and user errors as one line with exit 2."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from databacked.cli.app import app
from databacked.cli.common import parse_params
from databacked.config import load_settings
from databacked.errors import ConfigError

DATABACKED = Path(sys.executable).with_name("databacked")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for var in ("DATABACKED_STORE", "DATABACKED_CATALOG", "DATABACKED_EXECUTOR"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("databacked 0.")


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "plan", "status", "ls", "show", "lineage", "verify", "gc", "forget"):
        assert command in result.output


def test_init_writes_a_toml_that_loads_as_the_defaults(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "databacked.toml").read_text(encoding="utf-8")
    assert "# Where bytes live" in text
    parsed = tomllib.loads(text)
    assert parsed["store"] == "./data"
    settings = load_settings()  # reads ./databacked.toml from the working directory
    assert settings.store == "./data"
    assert settings.catalog == "sqlite:///.databacked/catalog.db"
    assert settings.executor == "processes"


def test_init_refuses_to_overwrite(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "databacked.toml").write_text('store = "s3://mine"\n', encoding="utf-8")
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert (tmp_path / "databacked.toml").read_text(encoding="utf-8") == 'store = "s3://mine"\n'


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_bad_reference_without_colon(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "pipelines.py"])
    assert result.exit_code == 2
    assert "FILE.py:PIPELINE" in _one_error_line(result.output)


def test_missing_pipeline_file(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "nowhere.py:cells"])
    assert result.exit_code == 2
    assert "'nowhere.py' does not exist" in _one_error_line(result.output)


def test_missing_name_in_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "pipes.py").write_text("x = 1\n", encoding="utf-8")
    result = runner.invoke(app, ["plan", "pipes.py:cells"])
    assert result.exit_code == 2
    assert "defines no 'cells'" in _one_error_line(result.output)


def test_missing_module(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "no_such_module_xyz:cells"])
    assert result.exit_code == 2
    assert "No module named 'no_such_module_xyz'" in _one_error_line(result.output)


def test_error_while_importing_the_pipeline_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "pipes.py").write_text("import math\nmath.nope()\n", encoding="utf-8")
    result = runner.invoke(app, ["run", "pipes.py:cells"])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "pipes.py failed with AttributeError" in line
    assert "--debug" in line


def test_ctrl_c_exits_130(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "pipes.py").write_text("raise KeyboardInterrupt\n", encoding="utf-8")
    result = runner.invoke(app, ["run", "pipes.py:cells"])
    assert result.exit_code == 130
    assert "Interrupted" in result.output
    assert "Traceback" not in result.output


def test_bad_param(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "pipes.py:cells", "--param", "novalue"])
    assert result.exit_code == 2
    assert "NAME=VALUE" in _one_error_line(result.output)


def test_bad_config_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "databacked.toml").write_text('durability = "sometimes"\n', encoding="utf-8")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2
    assert "durability" in _one_error_line(result.output)


def test_forget_without_filter_is_refused(runner: CliRunner) -> None:
    result = runner.invoke(app, ["forget"])
    assert result.exit_code == 2
    assert "--older-than" in _one_error_line(result.output)


def test_debug_shows_the_traceback(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--debug", "run", "nowhere.py:cells"])
    assert result.exit_code == 2
    assert "Traceback" in result.output
    assert "ConfigError" in result.output


def test_params_are_name_and_text() -> None:
    params = parse_params(["n=3", "name=plate1", 'wells=["A01", "B02"]'])
    assert params == {"n": "3", "name": "plate1", "wells": '["A01", "B02"]'}
    assert parse_params(["path=a=b"]) == {"path": "a=b"}
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_params(["1x=2"])


def test_console_script_reports_errors_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(DATABACKED), "run", "nowhere.py:cells"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "Error: The pipeline file 'nowhere.py' does not exist; check the path."
    ]


def test_demo_command_is_registered(runner: CliRunner) -> None:
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    assert "--folder" in result.output


def test_param_of_the_wrong_type_is_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "typed.py").write_text(
        "import databacked as db\n\n"
        "@db.step\ndef label(name: str, n: int) -> str:\n    return name * n\n\n"
        "@db.pipeline\ndef labels(name: str, n: int = 2):\n    return label(name=name, n=n)\n"
    )
    result = CliRunner().invoke(
        app, ["run", "typed.py:labels", "--param", "n=abc", "--param", "name=x"]
    )
    assert result.exit_code == 2
    assert "--param n=abc cannot be used" in result.output
    assert "expects an int for 'n', and 'abc' is not a whole number" in result.output
    assert "Traceback" not in result.output
    # a number given to a str parameter is taken as its text
    ok = CliRunner().invoke(
        app, ["run", "typed.py:labels", "--param", "name=7", "--executor", "inline"]
    )
    assert ok.exit_code == 0, ok.output


def test_pipeline_wiring_error_is_a_pipeline_error() -> None:
    import databacked as db

    @db.pipeline
    def broken(n):
        return list(range(n))

    with pytest.raises(db.PipelineError, match="failed while wiring its steps"):
        broken.trace("abc")


def test_run_and_plan_take_a_folder_of_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "a.txt").write_text("hello\n")
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "copy.yml").write_text(
        "pipeline: copy\ninput:\n  pfs: {repo: raw, glob: '/*'}\n"
        "transform:\n  cmd: [cp, -r, '{input_dir}/raw/.', '{output_dir}']\n"
    )
    ran = CliRunner().invoke(app, ["run", "pipelines", "--executor", "inline"])
    assert ran.exit_code == 0, ran.output
    assert (tmp_path / "data" / "copy" / "a.txt").read_text() == "hello\n"
    planned = CliRunner().invoke(app, ["plan", "pipelines/copy.yml"])
    assert planned.exit_code == 0, planned.output
    assert "cached" in planned.output
