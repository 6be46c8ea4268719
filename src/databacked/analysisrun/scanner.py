"""Image-analysis results as lanes and fields: cleansing, ``Lanes``, ``Fields``.

An image-analysis CSV has one row per measured object with ``MultiPointIndex`` (the field of
view), ``Entity``, ``Value`` and ``Filename`` = ``<method>_000_<data>.<ext>``. Every result
set is cleansed first (``ImageAnalysisResultSpec``: at least one cleansing function), then
split into lanes by data name, and each lane is scanned field by field (1 to 12).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

FIELD_NUMBERS: tuple[int, ...] = tuple(range(1, 13))
"""Fields of view scanned in every lane."""


@dataclass(frozen=True)
class CleansedData:
    """Image-analysis data that went through a cleansing function (what ``Lanes`` accepts)."""

    _data: pd.DataFrame

    @property
    def data(self) -> pd.DataFrame:
        return self._data


Cleansing = Callable[[Any], CleansedData]


@dataclass(frozen=True)
class ImageAnalysisResultSpec:
    """The default value of each field of the user's ImageAnalysisResults NamedTuple.

    >>> spec = ImageAnalysisResultSpec("spots", cleansing=entity_filter("Activity Spots"))
    >>> len(spec.cleansing)
    1
    """

    description: str
    cleansing: Cleansing | Sequence[Cleansing]

    def __post_init__(self) -> None:
        steps = (
            tuple(self.cleansing) if isinstance(self.cleansing, list | tuple) else (self.cleansing,)
        )
        if not steps or not all(callable(s) for s in steps):
            raise ValueError(
                f"ImageAnalysisResultSpec({self.description!r}) needs at least one cleansing "
                "function, such as cleansing=entity_filter('Activity Spots')."
            )
        object.__setattr__(self, "cleansing", steps)

    def cleanse(self, data: pd.DataFrame) -> pd.DataFrame:
        """Apply every cleansing function in order; each must return CleansedData."""
        value: Any = data
        for fn in self.cleansing:  # type: ignore[union-attr]
            value = fn(value)
        if isinstance(value, CleansedData):
            return value.data
        raise TypeError(
            f"The cleansing of {self.description!r} returned {type(value).__name__}, not "
            "CleansedData; end the cleansing with entity_filter(...) or return CleansedData."
        )


def filter_by_entity(
    data: pd.DataFrame | CleansedData, entity: str | Iterable[str] = "Activity Spots"
) -> CleansedData:
    """The rows whose ``Entity`` is ``entity`` (or one of several)."""
    frame = data.data if isinstance(data, CleansedData) else data
    if isinstance(entity, str):
        return CleansedData(frame[frame["Entity"] == entity])
    return CleansedData(frame[frame["Entity"].isin(list(entity))])


class _EntityFilter:
    """A picklable cleansing function keeping one or more entities."""

    def __init__(self, entity: str | Iterable[str]) -> None:
        self.entity = entity if isinstance(entity, str) else tuple(entity)

    def __call__(self, data: pd.DataFrame | CleansedData) -> CleansedData:
        return filter_by_entity(data, self.entity)

    def __repr__(self) -> str:
        return f"entity_filter({self.entity!r})"


def entity_filter(entity: str | Iterable[str]) -> Cleansing:
    """A cleansing function that keeps the rows of the given entity (or entities)."""
    return _EntityFilter(entity)


def specs_of(results_type: type) -> dict[str, ImageAnalysisResultSpec]:
    """The ImageAnalysisResultSpec of every field of the user's NamedTuple; ValueError if one
    is missing."""
    fields = getattr(results_type, "_fields", None)
    if not isinstance(fields, tuple):
        raise ValueError(
            f"{getattr(results_type, '__name__', results_type)!r} is not a NamedTuple; "
            "declare the image-analysis results as a typing.NamedTuple."
        )
    defaults = getattr(results_type, "_field_defaults", {})
    specs = {}
    for name in fields:
        spec = defaults.get(name)
        if not isinstance(spec, ImageAnalysisResultSpec):
            raise ValueError(
                f"{results_type.__name__}.{name} must have an ImageAnalysisResultSpec(...) "
                "as its default value."
            )
        specs[name] = spec
    return specs


def with_lane_columns(data: pd.DataFrame) -> pd.DataFrame:
    """Add ``ImageAnalysisMethod`` and ``Data`` from ``Filename`` (kept when present)."""
    if "MultiPointIndex" not in data.columns:
        raise ValueError("Image-analysis results need a MultiPointIndex column.")
    if {"ImageAnalysisMethod", "Data"}.issubset(data.columns):
        return data
    if data.empty:
        return data.assign(ImageAnalysisMethod="", Data="")
    if "Filename" not in data.columns:
        raise ValueError(
            "Image-analysis results need a Filename column (<method>_000_<data>.<ext>)."
        )
    parts = data["Filename"].astype(str).str.split("_000_", n=1, expand=True)
    if parts.shape[1] < 2:
        raise ValueError(
            "Filename values must look like <method>_000_<data>.<ext>, "
            f"e.g. {data['Filename'].iloc[0]!r} does not."
        )
    return data.assign(ImageAnalysisMethod=parts[0], Data=parts[1].str.split(".", n=1).str[0])


class Fields:
    """One lane of one result set, iterated field of view by field of view."""

    def __init__(
        self,
        name: str,
        image_analysis_method: str,
        data: pd.DataFrame,
        field_numbers: Sequence[int] = FIELD_NUMBERS,
        skip_empty_fields: bool = False,
    ) -> None:
        if "MultiPointIndex" not in data.columns:
            raise ValueError("Fields requires a MultiPointIndex column.")
        self.data_name = name
        self.image_analysis_method = image_analysis_method
        self.data = data
        self.field_numbers = list(field_numbers)
        self._skip_empty = skip_empty_fields

    def skip_empty_fields(self) -> Fields:
        """The same lane, iterating only over fields that have data."""
        return Fields(
            self.data_name, self.image_analysis_method, self.data, self.field_numbers, True
        )

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for number in self.field_numbers:
            rows = self.data[self.data["MultiPointIndex"] == number]
            if len(rows) or not self._skip_empty:
                yield rows

    def __repr__(self) -> str:
        return f"<Fields {self.data_name} ({len(self.data)} rows)>"


class Lanes:
    """A whole cleansed result set, lane by lane (one lane per data name)."""

    def __init__(
        self,
        whole_data: CleansedData,
        target_data: Sequence[str],
        field_numbers: Sequence[int] = FIELD_NUMBERS,
    ) -> None:
        self.whole_data = with_lane_columns(whole_data.data)
        self.target_data = list(target_data)
        self.field_numbers = list(field_numbers)
        wanted = set(self.target_data)
        self._by_name = {
            str(name): rows
            for name, rows in self.whole_data.groupby("Data", sort=False)
            if str(name) in wanted
        }

    def get(self, data_name: str) -> Fields:
        if data_name not in self.target_data:
            raise ValueError(f"{data_name!r} is not one of the lanes {self.target_data}.")
        rows = self._by_name.get(data_name, self.whole_data.iloc[0:0])
        rows = rows.reset_index(drop=True)
        methods = rows["ImageAnalysisMethod"].dropna().astype(str).unique()
        if len(methods) > 1:
            raise ValueError(
                f"Lane {data_name!r} mixes image-analysis methods {sorted(methods)}; "
                "give each lane the results of one method."
            )
        return Fields(data_name, methods[0] if len(methods) else "", rows, self.field_numbers)

    def __iter__(self) -> Iterator[Fields]:
        return (self.get(name) for name in self.target_data)


def scan(
    whole_data: pd.DataFrame, target_data: Sequence[str], field_numbers: Sequence[int] | None = None
) -> Lanes:
    """Lanes of a DataFrame that needs no cleansing."""
    return Lanes(CleansedData(whole_data), target_data, field_numbers or FIELD_NUMBERS)


__all__ = [
    "FIELD_NUMBERS",
    "CleansedData",
    "Fields",
    "ImageAnalysisResultSpec",
    "Lanes",
    "entity_filter",
    "filter_by_entity",
    "scan",
    "specs_of",
]
