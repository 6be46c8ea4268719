"""``--param`` text converted by the pipeline's annotation, or one sentence saying why not."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from databacked.cli.app import app
from databacked.cli.common import check_params
from databacked.errors import ConfigError

PIPES = """
from __future__ import annotations

from pathlib import Path

import pandas as pd
import databacked as db

@db.step(target="rows.json")
def count(ids: list) -> int:
    return len(ids)

@db.pipeline
def cells(dataset: pd.DataFrame):
    return count(ids=list(dataset.cell_id))

def typed(folder: Path, n: int, t: float, flag: bool, wells: list[str], sizes: list[int],
          opts: dict, maybe: int | None = None, anything=None):
    pass
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("DATABACKED_STORE", "DATABACKED_CATALOG"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "pipes.py").write_text(PIPES)
    pd.DataFrame({"cell_id": [1, 2, 3]}).to_csv(tmp_path / "cells.csv", index=False)
    pd.DataFrame({"cell_id": [4, 5]}).to_parquet(tmp_path / "cells.parquet")
    return tmp_path


def test_a_dataframe_parameter_reads_a_csv_or_parquet_path(project: Path) -> None:
    for table, rows in (("cells.csv", 3), ("cells.parquet", 2)):
        result = CliRunner().invoke(
            app, ["run", "pipes.py:cells", "--param", f"dataset={table}", "--executor", "inline"]
        )
        assert result.exit_code == 0, result.output
        assert pd.read_json(project / "data" / "rows.json", typ="series").item() == rows


def test_a_missing_table_is_one_sentence(project: Path) -> None:
    result = CliRunner().invoke(app, ["run", "pipes.py:cells", "--param", "dataset=nope.csv"])
    assert result.exit_code == 2
    assert "expects a DataFrame (give a CSV, Parquet or Excel file) for 'dataset'" in (
        result.output
    )
    assert "there is no file 'nope.csv'" in result.output
    assert "Traceback" not in result.output


def test_each_annotation_converts_its_text() -> None:
    import importlib.util

    spec = importlib.util.spec_from_loader("typed_params", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(PIPES, module.__dict__)
    params = {
        "folder": "raw/plate1",
        "n": "3",
        "t": "0.5",
        "flag": "yes",
        "wells": "A01, B02",
        "sizes": "[1, 2]",
        "opts": '{"a": 1}',
        "maybe": "null",
        "anything": "[1, 2]",
    }
    check_params(module.typed, params, "pipes.py:typed")
    assert params == {
        "folder": Path("raw/plate1"),
        "n": 3,
        "t": 0.5,
        "flag": True,
        "wells": ["A01", "B02"],
        "sizes": [1, 2],
        "opts": {"a": 1},
        "maybe": None,
        "anything": [1, 2],
    }
    with pytest.raises(ConfigError, match=r"expects a list\[int\] for 'sizes', and 'x'"):
        check_params(module.typed, {**params, "sizes": "1, x"}, "pipes.py:typed")
    with pytest.raises(ConfigError, match="'perhaps' is not true or false"):
        check_params(module.typed, {**params, "flag": "perhaps"}, "pipes.py:typed")
    with pytest.raises(ConfigError, match=r"no parameter 'flg' \(did you mean 'flag'\?\)"):
        check_params(module.typed, {**params, "flg": "1"}, "pipes.py:typed")
