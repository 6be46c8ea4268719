"""Messages for the people who run analyses, and ``exit_with_error``, the one way out.

Analyses are run by scientists who are not developers, so every failure ends with one
sentence for them (Japanese, or English when the locale is not Japanese; ``ANALYSISRUN_LANG``
chooses), the traceback on stderr for the developer, and an exit code: 1 for a processing
error, 2 for bad usage or input. Under a distributed orchestrator the answer tar on stdout
also gets an ``error`` entry; in a notebook an exception is raised instead of exiting.
"""

from __future__ import annotations

import enum
import locale
import os
import sys
import traceback
from dataclasses import dataclass
from typing import IO, Any, NoReturn

from databacked.errors import DatabackedError


class ExitCodes(enum.IntEnum):
    """Exit codes of an analysis that failed."""

    PROCESSING_ERROR = 1
    INVALID_USAGE = 2


class AnalysisRunError(DatabackedError):
    """Raised instead of exiting when the analysis runs in a notebook."""

    def __init__(self, message: str, code: int = ExitCodes.PROCESSING_ERROR) -> None:
        super().__init__(message)
        self.code = int(code)


@dataclass(frozen=True, slots=True)
class Message:
    """One user-facing sentence in Japanese and English; ``format`` fills both."""

    ja: str
    en: str

    def format(self, **values: Any) -> Message:
        return Message(self.ja.format(**values), self.en.format(**values))

    def text(self, lang: str | None = None) -> str:
        return self.ja if (lang or language()) == "ja" else self.en

    def __str__(self) -> str:
        return self.text()


def language() -> str:
    """``ja`` or ``en``: ``ANALYSISRUN_LANG`` first, else the locale (``LC_ALL``, ``LANG``...)."""
    forced = os.environ.get("ANALYSISRUN_LANG", "").strip().lower()
    if forced:
        return "ja" if forced.startswith("ja") else "en"
    for name in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = os.environ.get(name, "")
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    current = locale.getlocale()[0] or ""
    return "ja" if current.lower().startswith("ja") else "en"


# -- the messages ---------------------------------------------------------------------------

BAD_SPEC = Message(
    "ImageAnalysisResultsの定義が不正です。各フィールドのデフォルト値に"
    "ImageAnalysisResultSpec(...)を設定し、クレンジング処理を一つ以上指定してください。",
    "The ImageAnalysisResults definition is invalid: give every field an "
    "ImageAnalysisResultSpec(...) default with at least one cleansing function.",
)
BAD_INPUT = Message(
    "入力データの読み込みに失敗しました。入力形式を確認してください。",
    "Reading the input data failed; check the input format.",
)
BAD_MANUAL_INPUT = Message(
    "manual_inputの形式が正しくありません。ファイルのパスとパラメータを確認してください。",
    "manual_input is not valid; check the file paths and the parameters.",
)
BAD_METHOD = Message(
    "未対応のANALYSISRUN_METHODです: {method}",
    "Unsupported ANALYSISRUN_METHOD {method!r}; use 'analyze' or 'postprocess'.",
)
EMPTY_SAMPLES = Message(
    "サンプル名CSVファイルが空です。",
    "The sample-names CSV file is empty; list one 'data,sample' row per lane.",
)
NOTEBOOK_NEEDS_INPUT = Message(
    "Jupyter notebook環境ではmanual_inputの指定が必須です。",
    "In a Jupyter notebook, manual_input is required: pass manual_input=ar.ManualInput(...).",
)
NO_INPUT = Message(
    "入力データがありません。manual_inputを指定するか、端末から実行して対話的に入力してください。",
    "No input: pass manual_input=ar.ManualInput(...) or run the script from a terminal "
    "to enter the input interactively.",
)
NO_ENTRYPOINT = Message(
    "エントリーポイントとなるスクリプトのパス取得に失敗したため、並列実行させることができません。",
    "The analysis cannot run in parallel because the path of its script is unknown; run it "
    "as 'python script.py' or pass manual_input in a notebook.",
)
LANE_FAILED = Message(
    "ターゲット {data} ({sample}) の解析処理中にエラーが発生しました。",
    "The analysis of target {data} ({sample}) failed.",
)
LANES_FAILED = Message(
    "解析中にエラーが発生しました。",
    "The analysis failed for these targets:",
)
BAD_RESULT = Message(
    "ターゲット {data} ({sample}) の解析結果の形式が不正です。"
    "analyzeはpandas.Seriesを返してください。",
    "The analysis of target {data} ({sample}) returned {kind}; analyze must return a "
    "pandas.Series.",
)
POSTPROCESS_FAILED = Message(
    "後処理でエラーが発生しました。入力データやパラメータを確認してください。",
    "Post-processing failed; check the input data and the parameters.",
)
UNKNOWN = Message(
    "解析処理中に不明なエラーが発生しました。開発者に確認してください。",
    "An unexpected error stopped the analysis; ask its developer.",
)
INPUT_ABORTED = Message("入力が中断されました。", "Input aborted.")


# -- leaving --------------------------------------------------------------------------------


def running_mode() -> str:
    """``distributed`` (an orchestrator set ANALYSISRUN_METHOD), ``notebook`` or ``terminal``."""
    from databacked.analysisrun.environment import is_notebook, method_from_env

    if method_from_env() is not None:
        return "distributed"
    return "notebook" if is_notebook() else "terminal"


def exit_with_error(
    code: ExitCodes | int,
    message: Message | str,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    exception: BaseException | None = None,
    *,
    mode: str | None = None,
) -> NoReturn:
    """End the analysis: traceback and message on stderr, ``error`` entry, exit code.

    >>> exit_with_error(ExitCodes.INVALID_USAGE, EMPTY_SAMPLES)  # doctest: +SKIP
    """
    text = message.text() if isinstance(message, Message) else str(message)
    mode = mode or running_mode()
    err = stderr if stderr is not None else _binary(sys.stderr)
    if exception is not None and mode != "notebook":
        # the notebook shows the chained exception itself
        details = "".join(traceback.format_exception(exception))
        _write(err, details)
    if mode == "notebook":
        raise AnalysisRunError(text, int(code)) from exception
    _write(err, _boxed(text) if mode == "terminal" else text + "\n")
    if mode == "distributed":
        from databacked.analysisrun.tario import write_entries

        out = stdout if stdout is not None else _binary(sys.stdout)
        out.write(write_entries({"error": text.encode("utf-8")}))
        out.flush()
    raise SystemExit(int(code))


def _binary(stream: Any) -> IO[bytes]:
    return getattr(stream, "buffer", stream)


def _write(stream: IO[bytes], text: str) -> None:
    data = text.encode("utf-8", "replace")
    try:
        stream.write(data)
    except TypeError:  # a text stream (pytest's capture, a notebook)
        stream.write(text)  # type: ignore[arg-type]
    stream.flush()


def _boxed(text: str) -> str:
    import unicodedata

    def width(s: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)

    lines = text.splitlines() or [""]
    inner = max(width(line) for line in lines)
    top = "+" + "-" * (inner + 2) + "+"
    body = [f"| {line}{' ' * (inner - width(line))} |" for line in lines]
    return "\n".join(["", top, *body, top, ""]) + "\n"


__all__ = ["AnalysisRunError", "ExitCodes", "Message", "exit_with_error", "language"]
