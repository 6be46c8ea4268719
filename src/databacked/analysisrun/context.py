"""``read_context`` and ``AnalysisContext.run_analysis``: one script, three ways to run.

- distributed: ``ANALYSISRUN_METHOD=analyze|postprocess``; a tar on stdin, a tar on stdout,
  exit 0 (``distributed.py``);
- local: every lane a databacked call that re-runs this script as a lane process fed the
  seed's tar; this process orchestrates, post-processes and returns the DataFrame
  (``local.py``); the input comes from ``manual_input`` or is asked interactively;
- notebook: the same calls, run one by one in this process; ``manual_input`` is required.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, ValidationError

from databacked.analysisrun import messages as msg
from databacked.analysisrun.environment import is_notebook, method_from_env, script_command
from databacked.analysisrun.inputs import (
    ManualInput,
    NoParams,
    default_output_dir,
    input_model,
    read_table,
    sample_pairs,
)
from databacked.analysisrun.messages import ExitCodes, exit_with_error
from databacked.analysisrun.scanner import FIELD_NUMBERS, CleansedData, Lanes, specs_of

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R")


@dataclass
class AnalysisContext(Generic[P, R]):
    """What ``read_context`` found: the mode, the parameters and the lanes to analyse."""

    mode: str
    """``distributed``, ``local`` or ``notebook``."""
    params: Any
    params_type: type
    image_analysis_results: type
    stdout: IO[bytes]
    stderr: IO[bytes]
    method: str | None = None
    request: Any = None
    lanes: list[tuple[str, str, dict[str, pd.DataFrame]]] = field(default_factory=list)
    output_dir: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    last_run: Any = None
    """The last local/notebook run's LaneRun: counts of ran/cached lanes, images written."""

    def run_analysis(
        self,
        analyze: Callable[..., Any],
        postprocess: Callable[..., Any] | None = None,
    ) -> pd.DataFrame:
        """Analyse every lane, post-process, return the table (distributed runs exit)."""
        if self.mode == "distributed":
            self._answer(analyze, postprocess)
        try:
            return self._run_local(analyze, postprocess)
        except (SystemExit, KeyboardInterrupt, msg.AnalysisRunError):
            raise
        except Exception as exc:
            exit_with_error(ExitCodes.PROCESSING_ERROR, msg.UNKNOWN, self.stdout, self.stderr,
                            exc, mode=self._error_mode)  # fmt: skip

    @property
    def _error_mode(self) -> str:
        return "notebook" if self.mode == "notebook" else "terminal"

    def _answer(self, analyze: Callable[..., Any], postprocess: Callable[..., Any] | None) -> Any:
        from databacked.analysisrun import distributed

        if self.method == "serve":
            from databacked.analysisrun.serve import serve

            serve(self.request, self.stdout, self.stderr, params_type=self.params_type,
                  results_type=self.image_analysis_results, analyze=analyze)  # fmt: skip
            raise SystemExit(0)
        try:
            if self.method == "postprocess":
                distributed.answer_postprocess(self.request, postprocess, self.stdout,
                                               self.stderr)  # fmt: skip
            else:
                distributed.answer_analyze(self.request, analyze, self.image_analysis_results,
                                           self.stdout, self.stderr)  # fmt: skip
        except SystemExit:
            raise
        except Exception as exc:
            exit_with_error(ExitCodes.PROCESSING_ERROR, msg.UNKNOWN, self.stdout, self.stderr,
                            exc, mode="distributed")  # fmt: skip
        raise SystemExit(0)

    def _run_local(
        self, analyze: Callable[..., Any], postprocess: Callable[..., Any] | None
    ) -> pd.DataFrame:
        from databacked.analysisrun.distributed import postprocess_frame
        from databacked.analysisrun.lanestep import IN_PROCESS, script_entry
        from databacked.analysisrun.local import run_lanes

        if self.mode == "notebook":
            entry = IN_PROCESS
        else:
            command = script_command()
            if command is None:
                exit_with_error(ExitCodes.INVALID_USAGE, msg.NO_ENTRYPOINT, self.stdout,
                                self.stderr, mode="terminal")  # fmt: skip
            entry = script_entry(command)
        assert self.output_dir is not None
        run = run_lanes(
            analyze, self.params, self.params_type, self.image_analysis_results, self.lanes,
            entry=entry, output_dir=self.output_dir, **self.options,
        )  # fmt: skip
        self.last_run = run
        if run.failures:
            for failure in run.failures:
                _write(self.stderr, f"===== {failure.data_name} ({failure.sample_name}) =====\n"
                                    f"{failure.error}\n")  # fmt: skip
            lines = [f"- {f.data_name} ({f.sample_name})" for f in run.failures]
            message = msg.Message(
                "\n".join([msg.LANES_FAILED.ja, *lines]), "\n".join([msg.LANES_FAILED.en, *lines])
            )
            exit_with_error(ExitCodes.PROCESSING_ERROR, message, self.stdout, self.stderr,
                            mode=self._error_mode)  # fmt: skip
        try:
            return postprocess_frame(postprocess, self.params, run.results)
        except Exception as exc:
            exit_with_error(ExitCodes.PROCESSING_ERROR, msg.POSTPROCESS_FAILED, self.stdout,
                            self.stderr, exc, mode=self._error_mode)  # fmt: skip


def read_context(  # noqa: PLR0917 - the seed fixes this positional order
    params: type[BaseModel] | None = None,
    image_analysis_results: type | None = None,
    manual_input: ManualInput[Any] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    store: Any = None,
    catalog: Any = None,
    executor: Any = None,
    workers: int | None = None,
) -> AnalysisContext[Any, Any]:
    """Read the mode from the environment and the input from stdin, manual_input or the user.

    ``store``/``catalog`` default to ``output_dir`` and ``output_dir/.databacked/catalog.db``;
    ``executor`` (``threads`` locally, ``inline`` in a notebook) and ``workers`` say where
    lane calls run (``subprocess``, ``dask``, ``celery`` work too).
    """
    params_type = params or NoParams
    err = sys.stderr.buffer if hasattr(sys.stderr, "buffer") else sys.stderr
    method = method_from_env()
    mode = "distributed" if method is not None else ("notebook" if is_notebook() else "local")
    error_mode = {"local": "terminal"}.get(mode, mode)
    out = stdout if stdout is not None else _stdout(mode)
    if image_analysis_results is None:
        exit_with_error(ExitCodes.INVALID_USAGE, msg.BAD_SPEC, out, err, mode=error_mode)
    try:
        specs_of(image_analysis_results)
        model = input_model(params_type, image_analysis_results)
    except Exception as exc:
        exit_with_error(ExitCodes.INVALID_USAGE, msg.BAD_SPEC, out, err, exc, mode=error_mode)
    base = dict(mode=mode, params_type=params_type, image_analysis_results=image_analysis_results,
                stdout=out, stderr=err)  # fmt: skip
    if mode == "distributed":
        return _distributed(method, stdin, base, params_type, image_analysis_results)
    if manual_input is not None:
        try:
            given = model.model_validate({
                "image_analysis_results": dict(manual_input.image_analysis_results),
                "sample_names": manual_input.sample_names,
                "params": manual_input.params if manual_input.params is not None else {},
            })  # fmt: skip
        except ValidationError as exc:
            exit_with_error(ExitCodes.INVALID_USAGE, msg.BAD_MANUAL_INPUT, out, err, exc,
                            mode=error_mode)  # fmt: skip
    elif mode == "notebook":
        exit_with_error(ExitCodes.INVALID_USAGE, msg.NOTEBOOK_NEEDS_INPUT, out, err,
                        mode="notebook")  # fmt: skip
    elif not (stdin or sys.stdin).isatty():
        exit_with_error(ExitCodes.INVALID_USAGE, msg.NO_INPUT, out, err, mode=error_mode)
    else:
        from databacked.analysisrun.interactive import scan_model_input

        try:
            given = scan_model_input(model)
        except KeyboardInterrupt:
            exit_with_error(ExitCodes.INVALID_USAGE, msg.INPUT_ABORTED, out, err,
                            mode=error_mode)  # fmt: skip
    try:
        lanes = _lanes(given, image_analysis_results)
    except Exception as exc:
        exit_with_error(ExitCodes.INVALID_USAGE, msg.BAD_INPUT, out, err, exc, mode=error_mode)
    if not lanes:
        exit_with_error(ExitCodes.INVALID_USAGE, msg.EMPTY_SAMPLES, out, err, mode=error_mode)
    folder = Path(output_dir) if output_dir else default_output_dir(given.image_analysis_results)
    return AnalysisContext(
        **base, params=given.params, lanes=lanes, output_dir=folder.resolve(),
        options={"store": store, "catalog": catalog, "executor": executor, "workers": workers},
    )  # fmt: skip


def _lanes(given: Any, results_type: type) -> list[tuple[str, str, dict[str, pd.DataFrame]]]:
    """Cleanse each result set once, split it into lanes (sample-names order).

    The ``ImageAnalysisMethod``/``Data`` columns derived from ``Filename`` are left out of a
    lane's table (the lane re-derives them): less to hash and to send, same Fields.
    """
    from databacked.analysisrun.lane import lane_frames

    pairs = sample_pairs(given.sample_names)
    names = [data for data, _ in pairs]
    per_result, derived = {}, {}
    for name, spec in specs_of(results_type).items():
        cleansed = spec.cleanse(read_table(getattr(given.image_analysis_results, name)))
        per_result[name] = Lanes(CleansedData(cleansed), names, FIELD_NUMBERS)
        derived[name] = [c for c in ("ImageAnalysisMethod", "Data") if c not in cleansed.columns]
    return [
        (data, sample, lane_frames({
            n: lanes.get(data).data.drop(columns=derived[n]) for n, lanes in per_result.items()
        }))
        for data, sample in pairs
    ]  # fmt: skip


def _distributed(
    method: str | None, stdin: IO[bytes] | None, base: dict[str, Any], params_type: type,
    results_type: type,
) -> AnalysisContext[Any, Any]:  # fmt: skip
    from databacked.analysisrun import distributed
    from databacked.analysisrun.serve import SERVE_ENV
    from databacked.analysisrun.tario import read_entries

    out, err = base["stdout"], base["stderr"]
    if method == "showschema":
        distributed.send_schema(out, params_type, results_type)
        raise SystemExit(0)
    if method not in ("analyze", "postprocess", "analyzeseq"):
        exit_with_error(ExitCodes.INVALID_USAGE, msg.BAD_METHOD.format(method=method), out, err,
                        mode="distributed")  # fmt: skip
    if method == "analyze" and os.environ.get(SERVE_ENV, "").isdigit():
        return AnalysisContext(
            **base,
            params=None,
            method="serve",
            request=stdin if stdin is not None else sys.stdin.buffer,
        )
    try:
        entries = read_entries(stdin if stdin is not None else sys.stdin.buffer)
        request = distributed.parse(method, entries, params_type, results_type)
    except Exception as exc:
        exit_with_error(ExitCodes.INVALID_USAGE, msg.BAD_INPUT, out, err, exc,
                        mode="distributed")  # fmt: skip
    return AnalysisContext(**base, params=request.params, method=method, request=request)


def _stdout(mode: str) -> IO[bytes]:
    """Where answers go. In a distributed run the real stdout is kept for the answer tar and
    file descriptor 1 points at stderr, so nothing the analysis prints (from Python or C)
    can corrupt the tar."""
    if mode != "distributed":
        return sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout  # type: ignore[return-value]
    from databacked.analysisrun.serve import SERVE_ENV

    channel = os.environ.get(SERVE_ENV, "")
    if channel.isdigit():  # a local run's lane process: answers have a pipe of their own
        return os.fdopen(int(channel), "wb")
    try:
        sys.stdout.flush()
        answer = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)
    except (OSError, ValueError, AttributeError):  # no real fd 1 (embedded interpreters)
        return sys.stdout.buffer
    sys.stdout = sys.stderr
    return answer


def _write(stream: Any, text: str) -> None:
    try:
        stream.write(text.encode("utf-8", "replace"))
    except TypeError:
        stream.write(text)
    stream.flush()


__all__ = ["AnalysisContext", "read_context"]
