"""Capturing a call's ``logging`` records leaves the user's logging as it was: with logging
unconfigured, the root level is lowered only while calls run, yet their INFO records are in
their logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from databacked.cli.app import app

SCRIPT = """
import json
import logging
import sys

import databacked as db

log = logging.getLogger("lab.count")


@db.step(target="n/{x}.json")
def count(x: int) -> int:
    log.info("counted %s nuclei in field %s", 7 * x, x)
    return x


@db.pipeline
def fields():
    return count.map(x=[1, 2])


if __name__ == "__main__":
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    db.run(fields, store=sys.argv[1], catalog=sys.argv[2], executor=sys.argv[3], workers=2)
    log.info("after the run: not shown, as logging unconfigured never shows INFO")
    print(json.dumps({
        "level_before": before[0],
        "level_after": root.level,
        "handlers_same": before[1] == list(root.handlers),
        "info_enabled_after": log.isEnabledFor(logging.INFO),
    }))
"""


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_root_level_is_put_back_and_info_records_are_in_the_log(
    tmp_path: Path, executor: str
) -> None:
    script = tmp_path / "pipes.py"
    script.write_text(textwrap.dedent(SCRIPT))
    store, catalog = str(tmp_path / "data"), f"sqlite:///{tmp_path / 'catalog.db'}"
    env = dict(os.environ)  # the databacked under test, wherever the working folder is
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p or os.getcwd() for p in sys.path))
    done = subprocess.run(
        [sys.executable, str(script), store, catalog, executor],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state == {
        "level_before": 30,
        "level_after": 30,
        "handlers_same": True,
        "info_enabled_after": False,
    }
    assert "after the run" not in done.stderr
    out = CliRunner().invoke(app, ["logs", "count", "--store", store, "--catalog", catalog])
    assert out.exit_code == 0, out.output
    assert "INFO lab.count: counted 7 nuclei in field 1" in out.output
    assert "INFO lab.count: counted 14 nuclei in field 2" in out.output
