"""One lane, analysed: the user's ``analyze`` on that lane's Fields, wherever it runs.

The same function serves an orchestrator's ``ANALYSISRUN_METHOD=analyze`` process, the lane
processes of a local run and a notebook's in-process lanes, so all three see the same
Fields and produce the same result row and image bytes.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from databacked.analysisrun.args import AnalyzeArgs, ImageCollector
from databacked.analysisrun.scanner import FIELD_NUMBERS, CleansedData, Lanes, specs_of


@dataclass
class LaneInput:
    """One lane's input: names, parameters and one table per image-analysis result set."""

    data_name: str
    sample_name: str
    params: Any
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    cleansed: bool = False
    """True when the tables are already cleansed (a local run sends them so)."""


class BadResult(TypeError):
    """``analyze`` returned something other than a pandas Series."""


def lane_fields(results_type: type, lane: LaneInput) -> Any:
    """The user's NamedTuple of Fields for the lane (cleansing first unless done)."""
    specs = specs_of(results_type)
    missing = set(specs) - set(lane.frames)
    if missing:
        raise KeyError(
            f"The input has no image_analysis_results/{sorted(missing)[0]} entry "
            f"(expected one per field: {', '.join(specs)})."
        )
    values = {}
    for name, spec in specs.items():
        frame = lane.frames[name]
        cleansed = frame if lane.cleansed else spec.cleanse(frame)
        lanes = Lanes(CleansedData(cleansed), [lane.data_name], FIELD_NUMBERS)
        values[name] = lanes.get(lane.data_name)
    return results_type(**values)


def run_analyze(
    analyze: Callable[[AnalyzeArgs[Any, Any]], Any], results_type: type, lane: LaneInput
) -> tuple[pd.Series, ImageCollector]:
    """Call ``analyze`` for one lane; what it prints goes to stderr, never to stdout."""
    output = ImageCollector()
    args = AnalyzeArgs(
        params=_copy(lane.params),
        data_name=lane.data_name,
        sample_name=lane.sample_name,
        image_analysis_results=lane_fields(results_type, lane),
        output=output,
    )
    with contextlib.redirect_stdout(sys.stderr):
        series = analyze(args)
    if not isinstance(series, pd.Series):
        raise BadResult(type(series).__name__)
    return annotate(series, lane.data_name, lane.sample_name), output


def annotate(series: pd.Series, data_name: str, sample_name: str) -> pd.Series:
    """Every result row names its lane: ``data`` and ``sample_name`` (analysisrun's columns)."""
    missing = {"data", "sample_name"} - set(series.index)
    # a numeric Series cannot take the text labels without changing its dtype anyway
    series = series.astype(object) if missing and series.dtype != object else series.copy()
    if "data" not in series.index:
        series["data"] = data_name
    if "sample_name" not in series.index:
        series["sample_name"] = sample_name
    return series


def _copy(params: Any) -> Any:
    copy = getattr(params, "model_copy", None)
    return copy(deep=True) if callable(copy) else params


def lane_frames(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Tables with plain RangeIndex and text column names (what travels and is hashed)."""
    out = {}
    for name, frame in frames.items():
        plain = frame.reset_index(drop=True)
        plain.columns = [str(c) for c in plain.columns]
        out[name] = plain
    return out


__all__ = ["BadResult", "LaneInput", "annotate", "lane_fields", "lane_frames", "run_analyze"]
