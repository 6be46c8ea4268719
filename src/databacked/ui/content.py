"""Bytes of an artifact, found by its content hash: where they are, and whether they still are.

A catalog row names a store and a path; the bytes are served only when that store is one the
UI may read, the path passes the store's own path check, and the file there is still the one
recorded (same stamp, else re-hashed). A request never names a path.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from databacked.errors import DatabackedError

if TYPE_CHECKING:
    from databacked.store import Store
    from databacked.ui.source import Source

log = logging.getLogger("databacked.ui")

REHASH_LIMIT = 256 * 1024 * 1024
"""Files without a recorded stamp are re-hashed before serving only up to this size."""

ZIP_LIMIT = 2 * 1024**3
"""Largest folder artifact (OME-Zarr) offered as a zip download."""


@dataclass(frozen=True, slots=True)
class Located:
    """An artifact's bytes on a readable store, checked to be the recorded content."""

    store: Store
    path: str
    hash: str
    format: str
    size: int | None
    directory: bool

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


class NotServable(DatabackedError, LookupError):
    """The bytes are not in a store the UI reads, or have changed since they were recorded."""


def locate(source: Source, record: dict[str, Any]) -> Located:
    """The first location of ``record`` whose bytes are still the recorded ones."""
    reasons = []
    for loc in record.get("locations") or [record]:
        store = source.store(loc.get("store"))
        path = loc.get("path")
        if store is None or not path:
            reasons.append("not in a store this UI serves")
            continue
        try:
            path = store.check_path(path)
            info = store.info(path)
        except (DatabackedError, OSError) as exc:
            reasons.append(str(exc).rstrip("."))
            continue
        directory = record.get("format") == "ome-zarr" or _is_dir(store, path)
        stamp = loc.get("stamp")
        # A file whose stamp moved (or was never recorded) is trusted only if it re-hashes.
        unsure = not directory and info.stamp != stamp
        if unsure and ((info.size or 0) > REHASH_LIMIT or store.hash(path) != record["hash"]):
            reasons.append("the file is not the recorded content any more")
            continue
        fmt = record.get("format") or _format_name(path)
        return Located(store, path, record["hash"], fmt, record.get("size"), directory)
    raise NotServable(
        f"The bytes of {record['hash'][:12]} cannot be served: {'; '.join(reasons) or 'unknown'}."
    )


def _is_dir(store: Store, path: str) -> bool:
    try:
        return bool(store.fs.isdir(store.full_path(path)))
    except OSError:
        return False


def _format_name(path: str) -> str:
    from databacked.formats.registry import format_for_path

    fmt = format_for_path(path)
    return fmt.name if fmt is not None else ""


def stream(located: Located, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The file's bytes in chunks (a folder: a zip of its files)."""
    if located.directory:
        yield _zip(located)
        return
    with located.store.open(located.path) as fh:
        while block := fh.read(chunk):
            yield block


def _zip(located: Located) -> bytes:
    store = located.store
    files = list(store.list(located.path.rstrip("/") + "/"))
    if sum(f.size for f in files) > ZIP_LIMIT:
        raise NotServable(f"{located.path} is too large to download as a zip from the UI.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        folder = located.path.rstrip("/")
        base = folder.rsplit("/", 1)[0] if "/" in folder else ""  # the folder's parent
        for info in files:
            arcname = info.path[len(base) + 1 :] if base else info.path
            archive.writestr(arcname, store.read_bytes(info.path))
    return buffer.getvalue()


def table_preview(located: Located, rows: int = 20) -> dict[str, Any] | None:
    """First rows, columns and dtypes of a CSV or Parquet artifact; None for other formats."""
    import pandas as pd

    if located.format not in ("csv", "parquet"):
        return None
    with located.store.open(located.path) as fh:
        if located.format == "csv":
            frame = pd.read_csv(fh, nrows=rows)
            total = None
        else:
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(fh)
            total = parquet.metadata.num_rows
            frame = next(parquet.iter_batches(batch_size=rows)).to_pandas() if total else None
            if frame is None:
                frame = parquet.schema_arrow.empty_table().to_pandas()
    return {
        "columns": [str(c) for c in frame.columns],
        "dtypes": [str(t) for t in frame.dtypes],
        "rows": [[_cell(v) for v in row] for row in frame.head(rows).itertuples(index=False)],
        "total": total,
    }


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, int | str | bool) or value is None:
        return value
    return str(value)


def read_table(located: Located) -> Any:
    """A CSV or Parquet artifact as a DataFrame (for plate measurements)."""
    import pandas as pd

    with located.store.open(located.path) as fh:
        return pd.read_csv(fh) if located.format == "csv" else pd.read_parquet(fh)


__all__ = ["Located", "NotServable", "locate", "read_table", "stream", "table_preview"]
