"""What an analysis reads: ``VirtualFile``, ``ManualInput`` and the input models.

``read_context`` builds a pydantic model from the user's ImageAnalysisResults NamedTuple
(one ``VirtualFile`` per field, described by its spec) and validates ``manual_input`` or the
interactive answers with it, so a missing file is reported before anything runs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, Field, create_model
from pydantic_core import core_schema

from databacked.analysisrun.scanner import specs_of
from databacked.analysisrun.tario import _read_csv, decode_frame

P = TypeVar("P", bound=BaseModel)


class VirtualFile:
    """A file given by path (it must exist) or by its bytes (``io.BytesIO`` or ``bytes``)."""

    __analysisrun_input_method__ = "path"

    def __init__(self, source: str | Path | bytes | io.BytesIO | VirtualFile) -> None:
        self.path: Path | None = None
        self._bytes: bytes | None = None
        if isinstance(source, VirtualFile):
            self.path, self._bytes = source.path, source._bytes
        elif isinstance(source, bytes | bytearray):
            self._bytes = bytes(source)
        elif isinstance(source, io.BytesIO):
            self._bytes = source.getvalue()
        else:
            text = str(source).strip()
            if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
                text = text[1:-1]  # a path pasted with quotes around it
            path = Path(text).expanduser()
            if not path.is_file():
                raise ValueError(f"ファイルが存在しません / no such file: '{text}'")
            self.path = path.resolve()

    def read_bytes(self) -> bytes:
        if self._bytes is not None:
            return self._bytes
        assert self.path is not None
        return self.path.read_bytes()

    def unwrap(self) -> Path | io.BytesIO:
        """The path, or a BytesIO of the bytes (analysisrun's spelling)."""
        return self.path if self.path is not None else io.BytesIO(self.read_bytes())

    def __fspath__(self) -> str:
        if self.path is None:
            raise TypeError("This VirtualFile holds bytes, not a path.")
        return str(self.path)

    def __repr__(self) -> str:
        what = str(self.path) if self.path else f"<{len(self._bytes or b'')} bytes>"
        return f"VirtualFile({what})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        def validate(value: Any) -> VirtualFile:
            if isinstance(value, VirtualFile):
                return value
            if isinstance(value, str | Path | bytes | bytearray | io.BytesIO):
                return cls(value)
            raise TypeError(f"expected a file path or bytes, got {type(value).__name__}")

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "format": "path"}


@dataclass
class ManualInput(Generic[P]):
    """The input of a local or notebook run given in code instead of interactively."""

    params: P | None = None
    image_analysis_results: dict[str, Any] = field(default_factory=dict)
    """Field name of the ImageAnalysisResults NamedTuple -> CSV path (or bytes)."""
    sample_names: Any = None
    """CSV with columns ``data,sample``: which lanes to analyse and their sample names."""


class NoParams(BaseModel):
    """The parameters of an analysis that has none."""


def results_input_model(results_type: type) -> type[BaseModel]:
    """``ImageAnalysisResultsInput``: one VirtualFile per field, described by its spec."""
    fields: dict[str, Any] = {
        name: (VirtualFile, Field(description=spec.description))
        for name, spec in specs_of(results_type).items()
    }
    return create_model(  # type: ignore[call-overload,no-any-return]
        "ImageAnalysisResultsInput", __config__={"arbitrary_types_allowed": True}, **fields
    )


def input_model(params_type: type[BaseModel], results_type: type) -> type[BaseModel]:
    """The whole local input: image-analysis results, sample names and parameters."""
    return create_model(  # type: ignore[call-overload,no-any-return]
        "AnalysisInput",
        __config__={"arbitrary_types_allowed": True},
        image_analysis_results=(
            results_input_model(results_type),
            Field(description="画像解析結果CSVデータセット"),
        ),
        sample_names=(
            VirtualFile,
            Field(description="サンプル名CSVファイル: サンプル名とレーン番号の対応表"),
        ),
        params=(params_type, Field(description="解析全体に関わるパラメータ")),
    )


def read_table(file: VirtualFile) -> pd.DataFrame:
    """An image-analysis result file: CSV (as analysisrun reads it), Parquet or pickle."""
    data = file.read_bytes()
    if file.path is not None and file.path.suffix.lower() in (".csv", ".txt", ".tsv"):
        return _read_csv(data)
    return decode_frame(data)


def sample_pairs(file: VirtualFile) -> list[tuple[str, str]]:
    """(data name, sample name) per row of the sample-names CSV, in file order."""
    table = pd.read_csv(io.BytesIO(file.read_bytes()), dtype=str, keep_default_na=False)
    missing = {"data", "sample"} - set(table.columns)
    if missing:
        raise ValueError(
            f"The sample-names CSV lacks the column(s) {sorted(missing)}; it needs 'data,sample'."
        )
    pairs = dict(zip(table["data"].str.strip(), table["sample"].str.strip(), strict=True))
    return list(pairs.items())


def default_output_dir(results: BaseModel) -> Path:
    """The folder of the first image-analysis result given as a path, else the cwd."""
    for name in type(results).model_fields:
        value = getattr(results, name)
        if isinstance(value, VirtualFile) and value.path is not None:
            return value.path.parent
    return Path.cwd()


__all__ = [
    "ManualInput",
    "NoParams",
    "VirtualFile",
    "default_output_dir",
    "input_model",
    "read_table",
    "results_input_model",
    "sample_pairs",
]
