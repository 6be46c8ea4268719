"""The seed's tar entries: reading them safely, writing them, and tables inside them.

Entries are plain files named by path (``params``, ``image_analysis_results/<field>``,
``images/<file>``, ``error``...). Tables travel as pickle (what the seed's orchestrator
sends), CSV or Parquet; a reader recognises which by the bytes, so an orchestrator may send
any of them. Reading goes through the wire protocol's tar reader: no links, no absolute
paths, bounded sizes.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import tarfile
from collections.abc import Mapping
from typing import IO, Any

import pandas as pd

ENCODINGS = ("pickle", "csv", "parquet")
ENCODING_ENV = "ANALYSISRUN_ENCODING"
TEXT_COLUMNS = ("Entity", "Filename", "data", "data_name", "sample_name", "Data",
                "ImageAnalysisMethod")  # fmt: skip


def answer_encoding() -> str:
    """How answers encode tables: ``ANALYSISRUN_ENCODING`` (pickle, csv, parquet)."""
    value = os.environ.get(ENCODING_ENV, "pickle").strip().lower() or "pickle"
    if value not in ENCODINGS:
        raise ValueError(f"{ENCODING_ENV}={value!r} is not one of {', '.join(ENCODINGS)}.")
    return value


def read_entries(stream: IO[bytes]) -> dict[str, bytes]:
    """The files of a tar (or tar.gz) stream by name; ValueError for a malformed one."""
    from databacked.errors import WireError
    from databacked.executors.wire import Limits, read_tar

    try:
        return read_tar(stream, Limits.from_env())
    except WireError as exc:
        raise ValueError(str(exc)) from exc


def write_entries(entries: Mapping[str, bytes]) -> bytes:
    """A plain tar with the entries in order (PAX, ``is_file`` headers as analysisrun's)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            if name != "error":
                info.pax_headers = {"is_file": "true"}
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def text(entries: Mapping[str, bytes], name: str) -> str:
    """A text entry (``data_name``, ``sample_name``); KeyError when missing."""
    return entries[name].decode("utf-8").strip()


def json_entry(entries: Mapping[str, bytes], name: str) -> Any:
    """A JSON entry (``params``); KeyError when missing, ValueError when not JSON."""
    return json.loads(entries[name].decode("utf-8"))


# -- tables ---------------------------------------------------------------------------------


def encode_frame(frame: pd.DataFrame, encoding: str = "pickle") -> bytes:
    """A DataFrame as pickle, CSV (no index) or Parquet bytes."""
    buffer = io.BytesIO()
    if encoding == "pickle":
        frame.to_pickle(buffer)
    elif encoding == "csv":
        frame.to_csv(buffer, index=False)
    elif encoding == "parquet":
        frame.to_parquet(buffer)
    else:
        raise ValueError(f"Unknown table encoding {encoding!r}; use one of {ENCODINGS}.")
    return buffer.getvalue()


def decode_frame(data: bytes) -> pd.DataFrame:
    """A DataFrame from pickle, Parquet or CSV bytes (gzip allowed), told apart by content.

    A pickled Series becomes a one-row DataFrame.
    """
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[:4] == b"PAR1":
        return pd.read_parquet(io.BytesIO(data))
    if data[:1] == b"\x80":
        # The orchestrator that sends pickles is trusted: it runs this very script.
        value = pickle.loads(data)  # noqa: S301
        if isinstance(value, pd.Series):
            return series_frame(value)
        if not isinstance(value, pd.DataFrame):
            raise ValueError(f"A pickled table holds a {type(value).__name__}, not a DataFrame.")
        return value
    return _read_csv(data)


def _read_csv(data: bytes) -> pd.DataFrame:
    # Columns whose values have leading zeros ("0001") stay text, as analysisrun reads them.
    raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    dtypes: dict[str, Any] = {c: str for c in TEXT_COLUMNS if c in raw.columns}
    for column in raw.columns:
        if raw[column].str.match(r"^\s*[+-]?0\d+", na=False).any():
            dtypes[column] = str
    return pd.read_csv(io.BytesIO(data), dtype=dtypes)


def series_frame(series: pd.Series) -> pd.DataFrame:
    """A lane's result Series as a one-row table with text column names."""
    frame = series.to_frame().T.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return frame.infer_objects()


def encode_series(series: pd.Series, encoding: str = "pickle") -> bytes:
    """A lane's result: the pickled Series (the seed), or a one-row CSV / Parquet table."""
    if encoding == "pickle":
        buffer = io.BytesIO()
        series.to_pickle(buffer)
        return buffer.getvalue()
    return encode_frame(series_frame(series), encoding)


__all__ = [
    "ENCODINGS",
    "answer_encoding",
    "decode_frame",
    "encode_frame",
    "encode_series",
    "json_entry",
    "read_entries",
    "series_frame",
    "text",
    "write_entries",
]
