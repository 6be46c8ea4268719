"""databacked for Prefect 3: native files, content keys and the catalog under Prefect flows.

Two spellings from the seeds:

- CPR's (seed 001): ``ImageSource``, ``ImageTarget``, ``CSVSource``, ``CSVTarget``,
  ``cpr_serializer()`` and ``task_input_hash`` for ``@prefect.task(cache_key_fn=...)``;
- seed 000's: ``task(result=LocalResult(dir=..., serializer=ArrayToOmeTiff(...)),
  target=lambda **kwargs: ...)``, ``S3Result``, ``ArrayToDefaultWriter`` and the dataset
  manifests ``LocalDatasetResult`` / ``S3DatasetResult``.

Underneath: ``DatabackedCache`` (a Prefect cache policy keyed on databacked's call key),
``DatabackedSerializer`` (Prefect serializer type ``"databacked"``: JSON pointers, no
pickle) and ``CatalogLockManager`` (locks as catalog leases, across processes). Needs the
``databacked[prefect]`` extra; ``import databacked`` alone never imports Prefect.
"""

from __future__ import annotations

from typing import Any

from databacked.integrations.prefect.batches import flush
from databacked.integrations.prefect.context import configure
from databacked.integrations.prefect.datasets import LocalDatasetResult, S3DatasetResult
from databacked.integrations.prefect.inputs import task_input_hash
from databacked.integrations.prefect.locks import CatalogLockManager
from databacked.integrations.prefect.policy import DatabackedCache
from databacked.integrations.prefect.resources import (
    CSVSource,
    CSVTarget,
    ImageSource,
    ImageTarget,
    Resource,
    Target,
)
from databacked.integrations.prefect.results import (
    ArrayToDefaultWriter,
    ArrayToOmeTiff,
    LocalResult,
    S3Result,
    task,
)
from databacked.integrations.prefect.serializer import DatabackedSerializer, cpr_serializer


def __getattr__(name: str) -> Any:
    # prefect-dask (and distributed) load only when the Dask runner is asked for
    if name == "DaskTaskRunner":
        from databacked.integrations.prefect.runners import DaskTaskRunner

        return DaskTaskRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArrayToDefaultWriter",
    "ArrayToOmeTiff",
    "CSVSource",
    "CSVTarget",
    "CatalogLockManager",
    "DaskTaskRunner",
    "DatabackedCache",
    "DatabackedSerializer",
    "ImageSource",
    "ImageTarget",
    "LocalDatasetResult",
    "LocalResult",
    "Resource",
    "S3DatasetResult",
    "S3Result",
    "Target",
    "configure",
    "cpr_serializer",
    "flush",
    "task",
    "task_input_hash",
]
