"""status, ls, show and lineage over a recorded history (real store, real SQLite catalog)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from typer.testing import CliRunner

from databacked.cli.app import app

if TYPE_CHECKING:
    from conftest import History


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_status_lists_runs_steps_and_failures(history: History) -> None:
    out = invoke("status", "--catalog", history.catalog_url)
    assert history.run_id[:8] in out
    assert "cells" in out
    assert "crop" in out
    assert "summarize failed" in out
    assert "ValueError: no cells in this field of view" in out


def test_status_without_runs(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from databacked.catalog import Catalog

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Catalog.open(url).close()
    out = invoke("status", "--catalog", url)
    assert "No runs recorded yet" in out


def test_read_only_commands_do_not_create_a_catalog(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    for command in (["status"], ["ls"], ["verify"], ["gc", "--dry-run"], ["forget", "x"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "No catalog at .databacked/catalog.db yet" in result.output
    assert not (tmp_path / ".databacked").exists()


def test_ls_shows_artifacts_with_their_steps(history: History) -> None:
    out = invoke("ls", *history.flags)
    assert history.summary_path in out
    assert history.crop_path in out
    assert "summarize" in out
    assert "json" in out
    only = invoke("ls", "summary", *history.flags)
    assert history.summary_path in only
    assert history.crop_path not in only


def test_show_an_artifact(history: History) -> None:
    out = invoke("show", history.summary_path, *history.flags)
    record = history.catalog.artifact_by_path(history.store.url, history.summary_path)
    assert record is not None
    assert record.hash in out
    assert "summarize" in out
    assert history.summary_key in out


def test_show_a_call_by_short_key(history: History) -> None:
    out = invoke("show", history.crop_key[:12], *history.flags)
    assert history.crop_key in out
    assert "cell_index" in out
    assert history.crop_path in out
    assert history.raw_path in out  # its input


def test_show_a_failed_call(history: History) -> None:
    out = invoke("show", history.failed_key, *history.flags)
    assert "ValueError" in out
    assert "no cells in this field of view" in out


def test_show_unknown_is_a_one_line_error(history: History) -> None:
    result = CliRunner().invoke(app, ["show", "nothing/here.csv", *history.flags])
    assert result.exit_code == 2
    assert "databacked ls" in result.output
    assert "Traceback" not in result.output


def test_lineage_tree(history: History) -> None:
    out = invoke("lineage", history.summary_path, *history.flags)
    lines = out.splitlines()
    summary = next(i for i, line in enumerate(lines) if history.summary_path in line)
    crop = next(i for i, line in enumerate(lines) if history.crop_path in line)
    raw = next(i for i, line in enumerate(lines) if history.raw_path in line)
    assert summary < crop < raw
    assert "summarize" in lines[summary]
    assert "crop" in lines[crop]
    assert "source" in lines[raw]


def test_lineage_of_unknown_file(history: History) -> None:
    result = CliRunner().invoke(app, ["lineage", "nope.tiff", *history.flags])
    assert result.exit_code == 2
    assert "knows no artifact" in result.output


def test_status_of_a_chosen_run(history: History) -> None:
    out = invoke("status", "--run", history.run_id[:6], "--catalog", history.catalog_url)
    assert f"Calls of run {history.run_id[:8]}" in out
    bad = CliRunner().invoke(app, ["status", "--run", "zzzz", "--catalog", history.catalog_url])
    assert bad.exit_code == 2
    assert "No single recent run starts with 'zzzz'" in bad.output
