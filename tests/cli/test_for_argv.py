"""The console script builds only the command it is asked for; help and unknown names still see
every command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from databacked.cli.app import app, for_argv


def _names(typer_app: object) -> set[str]:
    commands = {c.name or c.callback.__name__ for c in typer_app.registered_commands}  # type: ignore[attr-defined]
    return commands | {g.name for g in typer_app.registered_groups}  # type: ignore[attr-defined]


def test_a_named_command_or_group_is_all_that_is_built() -> None:
    assert _names(for_argv(["--debug", "spec", "run", "pipelines"])) == {"spec"}
    assert _names(for_argv(["ls", "--json"])) == {"ls"}
    assert _names(app) > {"spec", "ls", "run", "gc"}  # the app itself is left whole


def test_help_and_unknown_names_get_the_whole_app() -> None:
    assert for_argv([]) is app
    assert for_argv(["--help"]) is app
    assert for_argv(["spc", "run"]) is app


def test_the_narrowed_app_runs_and_keeps_did_you_mean() -> None:
    result = CliRunner().invoke(for_argv(["spec", "schema"]), ["spec", "schema"])
    assert result.exit_code == 0, result.output
    assert '"$schema"' in result.output
    unknown = subprocess.run(
        [sys.executable, "-c", "from databacked.cli import main; main()", "spc", "run"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert unknown.returncode == 2
    assert "Did you mean 'spec'?" in unknown.stderr


def test_the_console_script_ends_with_the_commands_status_and_whole_output() -> None:
    """``main`` ends the process itself once the command is done (``os._exit`` after the
    atexit handlers): statuses and every byte of output must still come through a pipe."""
    command = [sys.executable, "-c", "from databacked.cli import main; main()"]
    schema = subprocess.run([*command, "spec", "schema"], capture_output=True, text=True)
    assert schema.returncode == 0, schema.stderr
    assert schema.stdout.rstrip().endswith("}")  # the whole JSON document, flushed
    assert '"$schema"' in schema.stdout
    missing = subprocess.run(
        [*command, "spec", "check", "no/such/folder"], capture_output=True, text=True
    )
    assert missing.returncode not in (0, None)
    assert missing.stderr.strip()


def test_under_a_profiler_the_console_script_returns_so_the_profile_is_written(
    tmp_path: Path,
) -> None:
    entry = tmp_path / "entry.py"
    entry.write_text("from databacked.cli import main; main()\n")
    profile = tmp_path / "out.prof"
    done = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(profile), str(entry), "spec", "schema"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert profile.stat().st_size > 0
