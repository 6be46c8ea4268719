"""read_context and exit_with_error in this process: input errors, notebooks, languages."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest
from arhelpers import make_tar, read_tar
from pydantic import BaseModel

import databacked.analysisrun as ar
from databacked.analysisrun.tario import decode_frame, encode_frame


class Params(BaseModel):
    threshold: float = 1.0


class Results(NamedTuple):
    spots: ar.Fields = ar.ImageAnalysisResultSpec("spots", cleansing=ar.entity_filter("A"))


class NoSpec(NamedTuple):
    spots: ar.Fields = None  # type: ignore[assignment]


def analyze(args: ar.AnalyzeArgs[Params, Results]) -> pd.Series:
    fields = args.image_analysis_results.spots
    print("printed by analyze")
    return pd.Series(
        {
            "n": len(fields.data),
            "over": int((fields.data["Value"] > 1).sum()),
            "fields": sum(1 for f in fields.skip_empty_fields()),
        }
    )


TABLE = pd.DataFrame(
    {
        "MultiPointIndex": [1, 1, 2, 3, 1],
        "Entity": ["A", "B", "A", "A", "A"],
        "Value": [0.5, 9.0, 2.0, 3.0, 4.0],
        "Filename": ["m_000_0001.tif"] * 4 + ["m_000_0002.tif"],
    }
)


@pytest.fixture
def distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PSEUDO_NBENV", "ANALYSISRUN_MODE", "ANALYSISRUN_ENCODING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANALYSISRUN_METHOD", "analyze")
    monkeypatch.setenv("ANALYSISRUN_LANG", "ja")


def test_analyze_in_process_cleanses_splits_and_keeps_stdout_clean(
    distributed: None, capfd: pytest.CaptureFixture[str]
) -> None:
    stdin = io.BytesIO(
        make_tar(
            {
                "data_name": b"0001",
                "sample_name": b"S1",
                "params": b'{"threshold": 2}',
                "image_analysis_results/spots": pickle.dumps(TABLE),
            }
        )
    )
    out = io.BytesIO()
    ac = ar.read_context(Params, Results, stdin=stdin, stdout=out)
    assert ac.mode == "distributed" and ac.params == Params(threshold=2)
    with pytest.raises(SystemExit) as exit_info:
        ac.run_analysis(analyze)
    assert exit_info.value.code == 0
    answer = read_tar(out.getvalue())
    row = pickle.loads(answer["analysis_result"])
    # entity B and lane 0002 are gone; fields 1..12 are scanned, two have spots
    assert row.to_dict() == {"n": 3, "over": 2, "fields": 3, "data": "0001", "sample_name": "S1"}
    assert "printed by analyze" in capfd.readouterr().err


def test_bad_input_and_unknown_method_exit_2(
    distributed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.BytesIO()
    with pytest.raises(SystemExit) as exit_info:
        ar.read_context(Params, Results, stdin=io.BytesIO(b"not a tar"), stdout=out)
    assert exit_info.value.code == 2
    assert read_tar(out.getvalue())["error"].decode() == (
        "入力データの読み込みに失敗しました。入力形式を確認してください。"
    )
    monkeypatch.setenv("ANALYSISRUN_METHOD", "preprocess")
    monkeypatch.setenv("ANALYSISRUN_LANG", "en")
    out = io.BytesIO()
    with pytest.raises(SystemExit) as exit_info:
        ar.read_context(Params, Results, stdin=io.BytesIO(b""), stdout=out)
    assert exit_info.value.code == 2
    assert read_tar(out.getvalue())["error"].decode() == (
        "Unsupported ANALYSISRUN_METHOD 'preprocess'; use 'analyze' or 'postprocess'."
    )


def test_a_notebook_needs_manual_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANALYSISRUN_METHOD", raising=False)
    monkeypatch.setenv("PSEUDO_NBENV", "1")
    monkeypatch.setenv("ANALYSISRUN_LANG", "ja")
    message = "Jupyter notebook環境ではmanual_inputの指定が必須です。"
    with pytest.raises(ar.AnalysisRunError, match=message) as info:
        ar.read_context(Params, Results)
    assert info.value.code == 2


def test_every_field_needs_a_spec_with_a_cleansing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANALYSISRUN_METHOD", raising=False)
    monkeypatch.setenv("PSEUDO_NBENV", "1")
    monkeypatch.setenv("ANALYSISRUN_LANG", "en")
    with pytest.raises(ar.AnalysisRunError, match="ImageAnalysisResultSpec") as info:
        ar.read_context(Params, NoSpec)
    assert info.value.code == 2
    with pytest.raises(ValueError, match="at least one cleansing"):
        ar.ImageAnalysisResultSpec("spots", cleansing=())


def test_notebook_run_raises_for_a_failing_lane(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANALYSISRUN_METHOD", raising=False)
    monkeypatch.setenv("PSEUDO_NBENV", "1")
    monkeypatch.setenv("ANALYSISRUN_LANG", "ja")
    TABLE.to_csv(tmp_path / "spots.csv", index=False)
    (tmp_path / "samples.csv").write_text("data,sample\n0001,S1\n0002,S2\n")
    manual = ar.ManualInput(
        Params(threshold=1), {"spots": tmp_path / "spots.csv"}, tmp_path / "samples.csv"
    )
    ac = ar.read_context(Params, Results, manual_input=manual, output_dir=tmp_path / "out")
    table = ac.run_analysis(analyze)
    assert list(table["data"]) == ["0001", "0002"] and list(table["n"]) == [3, 1]
    assert ac.last_run.counts["ran"] == 2
    again = ar.read_context(Params, Results, manual_input=manual, output_dir=tmp_path / "out")
    pd.testing.assert_frame_equal(again.run_analysis(analyze), table)
    assert again.last_run.counts == {"ran": 0, "cached": 2, "failed": 0, "skipped": 0}

    def broken(args: ar.AnalyzeArgs[Params, Results]) -> pd.Series:
        raise RuntimeError("no")

    with pytest.raises(ar.AnalysisRunError, match="- 0002 \\(S2\\)"):
        ac.run_analysis(broken)


def test_tables_are_read_by_content() -> None:
    for encoding in ("pickle", "csv", "parquet"):
        back = decode_frame(encode_frame(TABLE, encoding))
        pd.testing.assert_frame_equal(back, TABLE)
    leading = decode_frame(b"data,sample\n0001,S1\n")
    assert leading.loc[0, "data"] == "0001"


def test_analysisrun_later_modes_analyzeseq_and_showschema(
    distributed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANALYSISRUN_METHOD")
    monkeypatch.setenv("ANALYSISRUN_MODE", "analyzeseq")
    stdin = io.BytesIO(
        make_tar(
            {
                "targets": b'{"0001": "S1", "0002": "S2"}',
                "params": b"{}",
                "image_analysis_results/spots": encode_frame(TABLE, "csv"),
            }
        )
    )
    out = io.BytesIO()
    ac = ar.read_context(Params, Results, stdin=stdin, stdout=out)
    with pytest.raises(SystemExit) as exit_info:
        ac.run_analysis(analyze)
    assert exit_info.value.code == 0
    answer = read_tar(out.getvalue())
    assert sorted(answer) == ["0001/analysis_result", "0002/analysis_result"]
    assert pickle.loads(answer["0002/analysis_result"])["n"] == 1

    monkeypatch.setenv("ANALYSISRUN_MODE", "showschema")
    out = io.BytesIO()
    with pytest.raises(SystemExit):
        ar.read_context(Params, Results, stdout=out)
    paths = [entry["path"] for entry in json.loads(out.getvalue())["tar_entries"]]
    assert paths == ["data_name", "sample_name", "params", "image_analysis_results/spots"]


def test_scan_model_input_asks_field_by_field_and_asks_again(tmp_path: Path) -> None:
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from databacked.analysisrun.inputs import input_model

    TABLE.to_csv(tmp_path / "spots.csv", index=False)
    (tmp_path / "samples.csv").write_text("data,sample\n0001,S1\n")
    model = input_model(Params, Results)
    with create_pipe_input() as pipe:
        # a number that is not one is refused (and erased) before 2.5 is accepted
        pipe.send_text(
            f"{tmp_path / 'spots.csv'}\r{tmp_path / 'samples.csv'}\rabc\r" + "\x7f" * 3 + "2.5\r"
        )
        answers = ar.scan_model_input(model, input=pipe, output=DummyOutput())
    assert answers.params == Params(threshold=2.5)
    assert answers.image_analysis_results.spots.path == tmp_path / "spots.csv"
    assert answers.sample_names.read_bytes().startswith(b"data,sample")
