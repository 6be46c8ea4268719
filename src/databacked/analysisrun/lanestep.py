"""The lane as a databacked step: keyed by analyze's fingerprint, params and lane data.

``analysisrun_lane`` is an ordinary ``@step``: the engine keys each call on its parameters
(the user's ``analyze`` fingerprint, the parameters as JSON, the lane's names and its
cleansed tables), so a rerun with the same inputs is a cache hit that starts no process, a
changed parameter re-runs every lane, and one lane's changed data re-runs only that lane.
The call itself starts the user's script again with ``ANALYSISRUN_METHOD=analyze`` and the
seed's tar on stdin (a local run), or calls ``analyze`` in this process (a notebook).
Its two outputs, the result row and the images, are Parquet tables in the store.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import pandas as pd

from databacked.analysisrun.distributed import CLEANSED
from databacked.analysisrun.lane import LaneInput, run_analyze
from databacked.analysisrun.serve import forget, lane_process
from databacked.analysisrun.tario import (
    decode_frame,
    encode_frame,
    encode_series,
    read_entries,
    write_entries,
)
from databacked.engine.step import step

IN_PROCESS = "in-process"
"""The ``entry`` of a notebook's lanes: ``analyze`` is called in the driver's process."""

_LOCAL: dict[str, tuple[Callable[..., Any], type, type]] = {}
"""analyze fingerprint -> (analyze, params type, results type), for in-process lanes."""


class LaneError(RuntimeError):
    """A lane's process failed; the message holds its error entry and stderr."""


def register(fingerprint: str, analyze: Callable[..., Any], params: type, results: type) -> None:
    """Make ``analyze`` callable by in-process lanes of this driver."""
    _LOCAL[fingerprint] = (analyze, params, results)


def script_entry(command: list[str]) -> str:
    """The ``entry`` of a lane that re-runs the script (the interpreter is the worker's own)."""
    return "script:" + json.dumps(command[1:])


@step(name="analysisrun_lane", targets={"result": None, "images": None})
def analysisrun_lane(
    *,
    entry: str,
    analyze: str,
    params: dict[str, Any],
    data_name: str,
    sample_name: str,
    data: dict[str, pd.DataFrame],
) -> dict[str, pd.DataFrame]:
    """One lane: ``{"result": one-row table, "images": table of (name, data)}``."""
    if entry == IN_PROCESS:
        result, images = _in_process(analyze, params, data_name, sample_name, data)
    elif entry.startswith("script:"):
        result, images = _in_child([sys.executable, *json.loads(entry[7:])], params, data_name,
                                   sample_name, data)  # fmt: skip
    else:
        raise ValueError(f"Unknown lane entry {entry!r}.")
    frame = pd.DataFrame({"name": list(images), "data": list(images.values())})
    return {"result": result, "images": frame}


def _in_process(
    fingerprint: str,
    params: dict[str, Any],
    data_name: str,
    sample_name: str,
    data: dict[str, pd.DataFrame],
) -> tuple[pd.DataFrame, dict[str, bytes]]:
    if fingerprint not in _LOCAL:
        raise LaneError(
            f"The analyze function {fingerprint} is not registered in this process; "
            "in-process lanes run only in the notebook that defined it."
        )
    analyze, params_type, results_type = _LOCAL[fingerprint]
    # The tables take the same Parquet round trip as a lane process's input and answer, so
    # a notebook sees exactly what a lane process sees.
    frames = {k: decode_frame(encode_frame(v, "parquet")) for k, v in data.items()}
    lane = LaneInput(data_name, sample_name, params_type.model_validate(params), frames, True)
    series, output = run_analyze(analyze, results_type, lane)
    return decode_frame(encode_series(series, "parquet")), dict(output.images)


def _in_child(
    command: list[str],
    params: dict[str, Any],
    data_name: str,
    sample_name: str,
    data: dict[str, pd.DataFrame],
) -> tuple[pd.DataFrame, dict[str, bytes]]:
    entries = {
        "data_name": data_name.encode(),
        "sample_name": sample_name.encode(),
        "params": json.dumps(params, ensure_ascii=False).encode(),
        CLEANSED: b"true",
    }
    for name, frame in data.items():
        entries[f"image_analysis_results/{name}"] = encode_frame(frame, "parquet")
    env = dict(os.environ)
    for name in ("ANALYSISRUN_MODE", "PSEUDO_NBENV", "ANALYSISRUN_INTERACTIVITY"):
        env.pop(name, None)
    env.update(ANALYSISRUN_METHOD="analyze", ANALYSISRUN_ENCODING="parquet",
               PYTHONIOENCODING="utf-8")  # fmt: skip
    process = lane_process(command, env)
    got = process.ask(write_entries(entries))
    if got is None:
        forget(process)
        code, err = process.last_words()
        raise LaneError(f"the lane process died (exit {code})\n{err.strip()}")
    code, raw, err = got
    try:
        answer = read_entries(io.BytesIO(raw))
    except ValueError:
        answer = {}
    if code != 0 or "error" in answer or "analysis_result" not in answer:
        message = answer.get("error", b"").decode("utf-8", "replace").strip()
        raise LaneError(f"{message or 'the lane process failed'} (exit {code})\n{err.strip()}")
    if err.strip():
        sys.stderr.write(err)
    images = {
        name[len("images/") :]: value
        for name, value in answer.items()
        if name.startswith("images/")
    }
    return decode_frame(answer["analysis_result"]), images


__all__ = ["IN_PROCESS", "LaneError", "analysisrun_lane", "register", "script_entry"]
