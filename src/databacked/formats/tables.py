"""Tables: Csv and Parquet through pandas/pyarrow.

Both accept a DataFrame, a list of dicts (rows) or a dict of columns.
"""

from __future__ import annotations

import io
import math
from typing import Any

from databacked.formats.base import Format, corrupt


def _frame(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value
    return pd.DataFrame(value)


def _is_table(value: Any) -> bool:
    if type(value).__name__ == "DataFrame" and type(value).__module__.startswith("pandas"):
        return True
    if isinstance(value, list):
        return all(isinstance(row, dict) for row in value)
    if isinstance(value, dict) and value:
        return all(hasattr(col, "__len__") for col in value.values())
    return False


def _plain_rows(value: Any) -> list[dict[str, Any]] | None:
    """Rows of builtin values (list of dicts, or dict of list columns), else None.

    A step returning a few measurements as rows is the common case; writing those with the
    csv module spares the worker importing pandas (half a second per process).
    """
    scalar = (str, int, float, bool, type(None))
    if isinstance(value, list) and all(type(row) is dict for row in value):
        rows = value
    elif isinstance(value, dict) and value and all(type(c) is list for c in value.values()):
        lengths = {len(c) for c in value.values()}
        if len(lengths) != 1:
            return None  # pandas gives the error sentence for ragged columns
        rows = [dict(zip(value, cells, strict=True)) for cells in zip(*value.values(), strict=True)]
    else:
        return None
    if all(type(cell) in scalar for row in rows for cell in row.values()):
        return rows
    return None


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _write_rows(rows: list[dict[str, Any]], file: Any) -> dict[str, Any]:
    import csv

    columns: dict[str, None] = {}  # first-seen order, as pandas.DataFrame(rows) has it
    for row in rows:
        columns.update(dict.fromkeys(str(k) for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    # NaN as an empty cell, as pandas writes it
    writer.writerows({str(k): "" if _is_nan(v) else v for k, v in row.items()} for row in rows)
    file.write(text.getvalue().encode())
    return {"rows": len(rows), "columns": list(columns)}


def _metadata(frame: Any) -> dict[str, Any]:
    return {"rows": len(frame), "columns": [str(c) for c in frame.columns]}


class Csv(Format):
    """Comma-separated text; ``index=True`` keeps the DataFrame index as the first column."""

    name = "csv"
    extensions = (".csv",)

    def __init__(self, index: bool = False) -> None:
        super().__init__(index=index)

    def accepts(self, value: Any) -> bool:
        return _is_table(value)

    def _write(self, value: Any, file: Any) -> dict[str, Any]:
        rows = _plain_rows(value)
        if rows is not None and not self.options["index"]:
            return _write_rows(rows, file)
        frame = _frame(value)
        text = frame.to_csv(index=self.options["index"], lineterminator="\n")
        file.write(text.encode())
        return _metadata(frame)

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        import pandas as pd

        data = store.read_bytes(path)
        try:
            return pd.read_csv(io.BytesIO(data), index_col=0 if self.options["index"] else None)
        except (ValueError, pd.errors.ParserError) as exc:
            raise corrupt(self, store, path, exc) from exc


class Parquet(Format):
    """Apache Parquet through pyarrow (typed columns, compressed)."""

    name = "parquet"
    extensions = (".parquet",)

    def __init__(self, compression: str = "zstd") -> None:
        super().__init__(compression=compression)

    def accepts(self, value: Any) -> bool:
        return _is_table(value)

    def _write(self, value: Any, file: Any) -> dict[str, Any]:
        frame = _frame(value)
        # pyarrow writes no timestamps into the file, so equal frames give equal bytes
        frame.to_parquet(file, engine="pyarrow", compression=self.options["compression"])
        return _metadata(frame)

    def read(self, store: Any, path: str, *, lazy: bool = False) -> Any:
        import pandas as pd
        import pyarrow as pa

        try:
            with store.open(path) as file:
                return pd.read_parquet(file, engine="pyarrow")
        except (pa.ArrowException, ValueError, OSError) as exc:
            from databacked.errors import ArtifactNotFound

            if isinstance(exc, ArtifactNotFound):
                raise
            raise corrupt(self, store, path, exc) from exc


__all__ = ["Csv", "Parquet"]
