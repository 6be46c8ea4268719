"""databacked: data-backed pipelines for scientific data, microscopy first.

    import databacked as db

    @db.step(target="normalized/{cell_id}.ome.tiff", format=db.OmeTiff(dims="CZYX"))
    def normalize(cell_id: int, cell: np.ndarray) -> np.ndarray: ...

    result = db.run(my_pipeline, dataset, store="./data", executor="processes")

The public names load on first use, so ``import databacked`` stays fast (heavy libraries
such as pandas, SQLAlchemy or bioio are imported only by the code paths that need them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "DatabackedError": "databacked.errors",
    "ConfigError": "databacked.errors",
    "StoreError": "databacked.errors",
    "PathEscapeError": "databacked.errors",
    "ArtifactNotFound": "databacked.errors",
    "FormatError": "databacked.errors",
    "UnknownFormatError": "databacked.errors",
    "CorruptFileError": "databacked.errors",
    "UnhashableValueError": "databacked.errors",
    "IntegrityError": "databacked.errors",
    "CatalogError": "databacked.errors",
    "PipelineError": "databacked.errors",
    "TargetEscapeError": "databacked.errors",
    "TargetConflictError": "databacked.errors",
    "StepFailed": "databacked.errors",
    "ExecutorError": "databacked.errors",
    "WireError": "databacked.errors",
    "SpecError": "databacked.errors",
    # hashing
    "hash_file": "databacked.hashing",
    "hash_value": "databacked.hashing",
    # store
    "Store": "databacked.store",
    # formats
    "Format": "databacked.formats",
    "OmeTiff": "databacked.formats",
    "Tiff": "databacked.formats",
    "OmeZarr": "databacked.formats",
    "Png": "databacked.formats",
    "Csv": "databacked.formats",
    "Parquet": "databacked.formats",
    "Json": "databacked.formats",
    "Npy": "databacked.formats",
    "Pickle": "databacked.formats",
    # artifacts
    "Artifact": "databacked.artifact",
    "File": "databacked.artifact",
    "save": "databacked.artifact",
    "load": "databacked.artifact",
    # catalog
    "Catalog": "databacked.catalog",
    # engine
    "step": "databacked.engine.step",
    "pipeline": "databacked.engine.pipeline",
    "run": "databacked.engine.api",
    "plan": "databacked.engine.api",
    "RunResult": "databacked.engine.api",
    "command": "databacked.engine.command",
    "LossyInputWarning": "databacked.engine.lossy",
    # configuration
    "Settings": "databacked.config",
}

__all__ = [
    "Artifact",
    "ArtifactNotFound",
    "Catalog",
    "CatalogError",
    "ConfigError",
    "CorruptFileError",
    "Csv",
    "DatabackedError",
    "ExecutorError",
    "File",
    "Format",
    "FormatError",
    "IntegrityError",
    "Json",
    "LossyInputWarning",
    "Npy",
    "OmeTiff",
    "OmeZarr",
    "Parquet",
    "PathEscapeError",
    "Pickle",
    "PipelineError",
    "Png",
    "RunResult",
    "Settings",
    "SpecError",
    "StepFailed",
    "Store",
    "StoreError",
    "TargetConflictError",
    "TargetEscapeError",
    "Tiff",
    "UnhashableValueError",
    "UnknownFormatError",
    "WireError",
    "__version__",
    "command",
    "hash_file",
    "hash_value",
    "load",
    "pipeline",
    "plan",
    "run",
    "save",
    "step",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'databacked' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from databacked.artifact import Artifact, File, load, save
    from databacked.catalog import Catalog
    from databacked.config import Settings
    from databacked.engine.api import RunResult, plan, run
    from databacked.engine.command import command
    from databacked.engine.lossy import LossyInputWarning
    from databacked.engine.pipeline import pipeline
    from databacked.engine.step import step
    from databacked.errors import (
        ArtifactNotFound,
        CatalogError,
        ConfigError,
        CorruptFileError,
        DatabackedError,
        ExecutorError,
        FormatError,
        IntegrityError,
        PathEscapeError,
        PipelineError,
        SpecError,
        StepFailed,
        StoreError,
        TargetConflictError,
        TargetEscapeError,
        UnhashableValueError,
        UnknownFormatError,
        WireError,
    )
    from databacked.formats import (
        Csv,
        Format,
        Json,
        Npy,
        OmeTiff,
        OmeZarr,
        Parquet,
        Pickle,
        Png,
        Tiff,
    )
    from databacked.hashing import hash_file, hash_value
    from databacked.store import Store
