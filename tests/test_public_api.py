"""The public surface: pinned names, fast import, and the import-layer contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import databacked

EXPECTED_ALL = [
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
    "hash_file",
    "hash_value",
    "command",
    "load",
    "pipeline",
    "plan",
    "run",
    "save",
    "step",
]


def test_all_is_pinned() -> None:
    assert sorted(databacked.__all__) == sorted(EXPECTED_ALL)


def test_every_public_name_resolves() -> None:
    for name in databacked.__all__:
        assert getattr(databacked, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        databacked.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_user_errors_share_one_base() -> None:
    for name in databacked.__all__:
        obj = getattr(databacked, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, Warning):
            assert issubclass(obj, databacked.DatabackedError), name


def test_missing_artifact_is_also_file_not_found() -> None:
    assert issubclass(databacked.ArtifactNotFound, FileNotFoundError)


def test_import_loads_no_heavy_library() -> None:
    """`import databacked` stays light: heavy libraries load on first use."""
    code = (
        "import sys, databacked\n"
        "heavy = {'numpy', 'pandas', 'sqlalchemy', 'alembic', 'fsspec', 'bioio', 'zarr',"
        " 'dask', 'tifffile', 'pydantic', 'rich', 'typer'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_layers_contract_holds() -> None:
    """DESIGN section 8: imports flow one way (import-linter's `lint-imports`)."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    lint = subprocess.run([str(lint_imports)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-3000:]
