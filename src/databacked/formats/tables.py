"""Tables: Csv and Parquet through pandas/pyarrow.

Both accept a DataFrame, a list of dicts (rows) or a dict of columns.
"""

from __future__ import annotations

import io
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
