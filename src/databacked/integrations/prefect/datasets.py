"""Seed 000's "DatasetResult" handlers: a mapped task's results as one dataset-level table.

``LocalDatasetResult(dir=...).write(items, cell_id=dataset.cell_id)`` writes a Parquet
manifest next to the per-item files: one row per item with its URI, path, content hash,
size, format, call key and the mapped parameters. The manifest is recorded in the catalog
as a call whose inputs are the items, so ``databacked lineage`` walks from it to each file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from databacked.errors import PipelineError
from databacked.hashing import combine, hash_value
from databacked.integrations.prefect.pointers import Pointer
from databacked.store import Store


class LocalDatasetResult:
    """A Parquet manifest of a mapped task's files, in a local folder."""

    def __init__(
        self,
        dir: str | os.PathLike[str] = ".",
        name: str = "dataset.parquet",
        *,
        storage_options: dict | None = None,
    ) -> None:
        self.dir = os.fspath(dir)
        self.name = name
        self.storage_options = storage_options

    def _root(self) -> str:
        return os.path.abspath(os.path.expanduser(self.dir))

    @property
    def store(self) -> Store:
        return Store(self._root(), storage_options=self.storage_options)

    def write(self, items: Iterable[Any], **columns: Iterable[Any]) -> Any:
        """Write the manifest of ``items`` (task results or futures); returns its Artifact."""
        import pandas as pd

        from databacked.artifact import Artifact
        from databacked.formats import Parquet

        pointers = [_pointer(_resolved(item)) for item in items]
        table: dict[str, list[Any]] = {
            "uri": [p.uri for p in pointers],
            "path": [p.path for p in pointers],
            "hash": [p.hash for p in pointers],
            "size": [p.size for p in pointers],
            "format": [str(p.format.get("name", "")) for p in pointers],
            "key": [p.key for p in pointers],
        }
        for column, values in columns.items():
            listed = list(values)
            if len(listed) != len(pointers):
                raise PipelineError(
                    f"Column {column!r} has {len(listed)} values for {len(pointers)} items; "
                    "pass one value per mapped item."
                )
            table[column] = listed
        frame = pd.DataFrame(table)
        store = self.store
        fmt = Parquet()
        record = fmt.write(frame, store, store.check_path(self.name))
        store.sync()
        _record(store, record, pointers, frame, self.name)
        return Artifact.from_record(store, record)

    def read(self) -> Any:
        """The manifest as a DataFrame."""
        from databacked.formats import Parquet

        return Parquet().read(self.store, self.name)


class S3DatasetResult(LocalDatasetResult):
    """A Parquet manifest of a mapped task's files under ``s3://bucket/prefix/``."""

    def _root(self) -> str:
        if not self.dir.startswith("s3://"):
            raise PipelineError(
                f"S3DatasetResult(dir={self.dir!r}) needs an s3:// URL such as "
                "'s3://bucket/prefix/'."
            )
        return self.dir.rstrip("/")


def _resolved(item: Any) -> Any:
    result = getattr(item, "result", None)
    return result() if callable(result) and hasattr(item, "task_run_id") else item


def _pointer(value: Any) -> Pointer:
    from databacked.integrations.prefect.lazy import pointer_of
    from databacked.integrations.prefect.resources import Target

    if isinstance(value, Target) and value.pointer is not None:
        return value.pointer
    pointer = pointer_of(value)
    if pointer is None:
        raise PipelineError(
            f"A {type(value).__name__} is not a file written through databacked; give "
            "DatasetResult the results of a task(result=..., target=...) or ImageTargets."
        )
    return pointer


def _record(store: Store, record: Any, pointers: list[Pointer], frame: Any, name: str) -> None:
    from databacked.catalog.records import CallRecord, InputRef
    from databacked.integrations.prefect.context import catalog

    params_hash = hash_value(frame.drop(columns=["uri"]).astype(str).to_dict("list"))
    key = combine("databacked-dataset", store.url, name, params_hash)
    catalog().record_calls(
        [
            CallRecord(
                key=key,
                step=f"dataset:{name}",
                fingerprint="dataset@1",
                store=store.url,
                params_hash=params_hash,
                params={"items": len(pointers)},
                inputs={"items": [InputRef(p.hash, p.path, p.store) for p in pointers]},
                outputs={"value": record},
            )
        ]
    )


__all__ = ["LocalDatasetResult", "S3DatasetResult"]
