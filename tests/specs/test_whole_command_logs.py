"""A ``cmd`` datum's whole stdout and stderr reach its log in the store, which ``databacked
logs`` prints; the catalog keeps the tails."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from databacked.catalog import Catalog
from databacked.cli.app import app
from databacked.specs.runner import run_specs
from databacked.store import Store

LINES = 1500  # "line 0001 of 1500\n" is 18 characters: 27,000 on each stream


@pytest.mark.parametrize("executor", ["processes", "inline"])
def test_logs_print_all_of_a_long_command_output(tmp_path: Path, executor: str) -> None:
    store = Store(tmp_path / "data")
    store.put_bytes("texts/a.txt", b"a")
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yml").write_text(
        textwrap.dedent(
            f"""
            pipeline: chatty
            input: {{repo: texts, glob: "/(*).txt"}}
            transform:
              cmd:
                - sh
                - -c
                - >-
                  i=1; while [ $i -le {LINES} ]; do
                  printf 'line %04d of {LINES}\\n' $i; printf 'err %04d of {LINES}\\n' $i >&2;
                  i=$((i+1)); done
            """
        )
    )
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Catalog.open(catalog) as cat:
        result = run_specs(tmp_path / "pipelines", store=store, catalog=cat, executor=executor)
    assert result.counts() == {"chatty": {"ran": 1}}

    out = CliRunner().invoke(
        app, ["logs", "chatty", "--store", str(store.url), "--catalog", catalog]
    )
    assert out.exit_code == 0, out.output
    printed = out.output.splitlines()
    expected_out = [f"line {i:04d} of {LINES}" for i in range(1, LINES + 1)]
    expected_err = [f"err {i:04d} of {LINES}" for i in range(1, LINES + 1)]
    assert [line for line in printed if line.startswith("line ")] == expected_out
    assert [line for line in printed if line.startswith("err ")] == expected_err
    with Catalog.open(catalog) as cat:
        [row] = cat.find_calls(step="chatty")
    assert len(row.stdout) <= 4000 and row.stdout.endswith(f"line {LINES:04d} of {LINES}\n")
