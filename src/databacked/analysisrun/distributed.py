"""The orchestrator's side: ``ANALYSISRUN_METHOD=analyze|postprocess``, a tar in, a tar out.

``analyze`` reads ``data_name``, ``sample_name``, ``params`` (JSON) and
``image_analysis_results/<field>`` (pickle, CSV or Parquet) and answers ``analysis_result``
and ``images/<file>``; ``postprocess`` reads ``analysis_results`` (one table, or one entry
per lane under ``analysis_results/``) and ``params`` and answers ``result_csv`` and
``result_json/<data name>``. analysisrun's later ``analyzeseq`` (``targets`` JSON, answers
under ``<data name>/``) and ``showschema`` are understood too. Exit 0 once the answer is
written; a failure writes an ``error`` entry and exits 1 (processing) or 2 (input).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import pandas as pd

from databacked.analysisrun import messages as msg
from databacked.analysisrun.args import PostprocessArgs
from databacked.analysisrun.lane import BadResult, LaneInput, run_analyze
from databacked.analysisrun.messages import ExitCodes, exit_with_error
from databacked.analysisrun.scanner import specs_of
from databacked.analysisrun.tario import (
    answer_encoding,
    decode_frame,
    encode_series,
    json_entry,
    series_frame,
    text,
    write_entries,
)

CLEANSED = "cleansed"
"""Entry a local run adds: the tables are cleansed already (orchestrators never send it)."""


@dataclass
class Request:
    """A parsed orchestrator request: the method and what it carries."""

    method: str
    params: Any
    lanes: list[LaneInput]
    analysis_results: pd.DataFrame | None = None


def parse(
    method: str, entries: Mapping[str, bytes], params_type: type, results_type: type
) -> Request:
    """Validate an input tar for ``method``; KeyError/ValueError when it is malformed."""
    params = params_type.model_validate(json_entry(entries, "params"))
    if method == "postprocess":
        return Request(method, params, [], _analysis_results(entries))
    frames = {
        name: decode_frame(entries[f"image_analysis_results/{name}"])
        for name in specs_of(results_type)
    }
    cleansed = entries.get(CLEANSED, b"").strip().lower() in (b"true", b"1")
    if method == "analyzeseq":
        targets = json_entry(entries, "targets")
        if not isinstance(targets, dict):
            raise ValueError("'targets' must be a JSON object {data name: sample name}.")
        lanes = [LaneInput(str(d), str(s), params, frames, cleansed) for d, s in targets.items()]
    else:
        lanes = [
            LaneInput(text(entries, "data_name"), text(entries, "sample_name"), params, frames,
                      cleansed)
        ]  # fmt: skip
    return Request(method, params, lanes)


def _analysis_results(entries: Mapping[str, bytes]) -> pd.DataFrame:
    if "analysis_results" in entries:
        return decode_frame(entries["analysis_results"])
    prefix = "analysis_results/"
    parts = sorted((k for k in entries if k.startswith(prefix)), key=_natural)
    if not parts:
        raise KeyError("analysis_results")
    return pd.concat([decode_frame(entries[k]) for k in parts], ignore_index=True)


def _natural(name: str) -> tuple[Any, ...]:
    tail = name.rsplit("/", 1)[-1]
    return (0, int(tail), "") if tail.isdigit() else (1, 0, tail)


def answer_analyze(
    request: Request,
    analyze: Callable[..., Any],
    results_type: type,
    stdout: IO[bytes],
    stderr: IO[bytes],
) -> None:
    """Run the lane(s) and write the answer tar; failures exit through exit_with_error."""
    encoding = answer_encoding()
    seq = request.method == "analyzeseq"
    entries: dict[str, bytes] = {}
    for lane in request.lanes:
        prefix = f"{lane.data_name}/" if seq else ""
        try:
            series, output = run_analyze(analyze, results_type, lane)
        except BadResult as exc:
            message = msg.BAD_RESULT.format(data=lane.data_name, sample=lane.sample_name,
                                            kind=str(exc))  # fmt: skip
            exit_with_error(ExitCodes.PROCESSING_ERROR, message, stdout, stderr, exc,
                            mode="distributed")  # fmt: skip
        except Exception as exc:
            message = msg.LANE_FAILED.format(data=lane.data_name, sample=lane.sample_name)
            exit_with_error(ExitCodes.PROCESSING_ERROR, message, stdout, stderr, exc,
                            mode="distributed")  # fmt: skip
        for name, data in output.images.items():
            entries[f"{prefix}images/{name}"] = data
        entries[f"{prefix}analysis_result"] = encode_series(series, encoding)
    _send(stdout, entries)


def answer_postprocess(
    request: Request,
    postprocess: Callable[..., Any] | None,
    stdout: IO[bytes],
    stderr: IO[bytes],
) -> None:
    """Post-process all lanes' results and write ``result_csv`` and ``result_json/*``."""
    results = request.analysis_results
    assert results is not None
    try:
        final = postprocess_frame(postprocess, request.params, results)
        entries = result_entries(final)
    except Exception as exc:
        exit_with_error(ExitCodes.PROCESSING_ERROR, msg.POSTPROCESS_FAILED, stdout, stderr,
                        exc, mode="distributed")  # fmt: skip
    _send(stdout, entries)


def postprocess_frame(
    postprocess: Callable[..., Any] | None, params: Any, results: pd.DataFrame
) -> pd.DataFrame:
    """``postprocess`` on the lanes' results (stdout to stderr); None keeps the results."""
    if postprocess is None:
        return results
    copy = getattr(params, "model_copy", None)
    with contextlib.redirect_stdout(sys.stderr):
        out = postprocess(PostprocessArgs(copy(deep=True) if callable(copy) else params,
                                          results.copy()))  # fmt: skip
    if out is None:
        return results
    if isinstance(out, pd.Series):
        return series_frame(out)
    if not isinstance(out, pd.DataFrame):
        raise TypeError(f"postprocess returned a {type(out).__name__}, not a pandas DataFrame.")
    return out


def result_entries(frame: pd.DataFrame) -> dict[str, bytes]:
    """``result_csv`` and one ``result_json/<data name>`` per row."""
    entries = {"result_csv": frame.to_csv(index=False).encode("utf-8")}
    for index, row in frame.iterrows():
        name = row.get("data", row.get("data_name", index))
        entries[f"result_json/{name}"] = row.to_json().encode("utf-8")
    return entries


def schema(params_type: type, results_type: type) -> dict[str, Any]:
    """``showschema``: the entries an orchestrator sends for ``analyze``."""
    entries = [
        {"path": "data_name", "required": True, "content_type": "text/plain"},
        {"path": "sample_name", "required": True, "content_type": "text/plain"},
        {"path": "params", "required": True, "content_type": "application/json",
         "json_schema": params_type.model_json_schema()},
    ]  # fmt: skip
    for name, spec in specs_of(results_type).items():
        entries.append({
            "path": f"image_analysis_results/{name}", "required": True,
            "content_type": "application/octet-stream", "description": spec.description,
        })  # fmt: skip
    return {"schema_version": "1", "transport": {"type": "tar", "compression": ["tar", "tar.gz"]},
            "tar_entries": entries}  # fmt: skip


def send_schema(stdout: IO[bytes], params_type: type, results_type: type) -> None:
    stdout.write(json.dumps(schema(params_type, results_type), ensure_ascii=False).encode())
    stdout.flush()


def _send(stdout: IO[bytes], entries: dict[str, bytes]) -> None:
    stdout.write(write_entries(entries))
    stdout.flush()


__all__ = ["CLEANSED", "Request", "answer_analyze", "answer_postprocess", "parse", "schema"]
