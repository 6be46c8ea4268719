"""Csv and Parquet against the format contract; rows, columns and frames all accepted."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from databacked.formats import Csv, Parquet
from databacked.store import Store
from databacked.testing.format_contract import FormatContract


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"cell": [1, 2, 3], "area": [10.5, 20.25, 7.0], "label": ["a", "b", "c"]})


class TestCsv(FormatContract):
    @pytest.fixture
    def format(self) -> Csv:
        return Csv()

    @pytest.fixture
    def sample_value(self) -> pd.DataFrame:
        return _frame()


class TestParquet(FormatContract):
    @pytest.fixture
    def format(self) -> Parquet:
        return Parquet()

    @pytest.fixture
    def sample_value(self) -> pd.DataFrame:
        return _frame()


@pytest.mark.parametrize("fmt", [Csv(), Parquet()], ids=["csv", "parquet"])
@pytest.mark.parametrize(
    "value",
    [
        [{"cell": 1, "area": 10.5, "label": "a"}, {"cell": 2, "area": 20.25, "label": "b"}],
        {"cell": [1, 2], "area": [10.5, 20.25], "label": ["a", "b"]},
    ],
    ids=["rows", "columns"],
)
def test_rows_and_columns_become_a_frame(fmt: Any, value: Any, tmp_path: Any) -> None:
    store = Store(tmp_path)
    record = fmt.write(value, store, "t" + fmt.extensions[0])
    assert record.metadata == {"rows": 2, "columns": ["cell", "area", "label"]}
    got = fmt.read(store, "t" + fmt.extensions[0])
    assert got.to_dict("list") == pd.DataFrame(value).to_dict("list")


def test_csv_index_option_keeps_the_index(tmp_path: Any) -> None:
    store = Store(tmp_path)
    frame = _frame().set_index("cell")
    Csv(index=True).write(frame, store, "i.csv")
    assert Csv(index=True).read(store, "i.csv").equals(frame)
    assert list(Csv().read(store, "i.csv").columns) == ["cell", "area", "label"]


class TestParquetOnS3(TestParquet):
    @pytest.fixture
    def store(self, s3_bucket: str) -> Store:
        return Store(f"{s3_bucket}/tables")


def test_plain_rows_are_written_like_pandas_without_needing_it(tmp_path: Any) -> None:
    store = Store(tmp_path)
    rows = [
        {"name": "a", "mean": 0.123456789012345, "n": 3, "ok": True, "none": None},
        {"name": "b,c", "mean": float("nan"), "n": -1, "ok": False, "extra": 'x"y'},
    ]
    record = Csv().write(rows, store, "rows.csv")
    expected = pd.DataFrame(rows).to_csv(index=False, lineterminator="\n").encode()
    assert store.read_bytes("rows.csv") == expected
    assert record.metadata == {"rows": 2, "columns": ["name", "mean", "n", "ok", "none", "extra"]}
    back = Csv().read(store, "rows.csv")
    assert back["name"].tolist() == ["a", "b,c"] and back["mean"].isna().tolist() == [False, True]
