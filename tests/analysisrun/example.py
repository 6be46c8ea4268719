"""Seed 003's usage example, with only its import line changed (and its typos fixed).

The tests run this file as a script; EXAMPLE_* variables point it at their data.
"""

import os
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from pydantic import BaseModel

import databacked.analysisrun as ar

DATA = Path(os.environ.get("EXAMPLE_DATA", "."))
OUT = os.environ.get("EXAMPLE_OUT", "./out")
PARAM1 = int(os.environ.get("EXAMPLE_PARAM1", "1"))
LOG = os.environ.get("EXAMPLE_LOG", "")


class Parameters(BaseModel):
    """ユーザーが定義する任意の解析パラメータ"""

    param1: int
    param2: str


class ImageAnalysisResults(NamedTuple):
    """ユーザーが定義する、解析対象となる画像解析結果のセット"""

    activity_spots: ar.Fields = ar.ImageAnalysisResultSpec(
        description="輝点情報の画像解析結果csv",
        cleansing=ar.entity_filter("Activity Spots"),
    )
    surrounding_spots: ar.Fields = ar.ImageAnalysisResultSpec(
        description="輝点の周辺情報の画像解析結果csv",
        cleansing=ar.entity_filter("Surrounding Spots"),
    )


def analyze(args: ar.AnalyzeArgs[Parameters, ImageAnalysisResults]) -> pd.Series:
    """解析処理の実装"""
    spots = args.image_analysis_results.activity_spots
    around = args.image_analysis_results.surrounding_spots
    print(f"analysing {args.data_name}")  # must never reach the answer tar
    if LOG:
        with open(LOG, "a") as log:
            log.write(f"{os.getpid()} {args.data_name}\n")
    if args.data_name == os.environ.get("EXAMPLE_FAIL_LANE"):  # read at run time: not code
        raise ValueError(f"lane {args.data_name} cannot be analysed")
    per_field = [len(field) for field in spots]
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)
    ax.bar(range(1, 13), per_field)
    ax.set_title(args.data_name)
    args.output(fig, f"{args.data_name}_fields.png", "bar")
    return pd.Series(
        {
            "spots": len(spots.data),
            "mean": float(spots.data["Value"].mean()) * args.params.param1,
            "around": len(around.data),
            "method": spots.image_analysis_method,
            "label": args.params.param2,
        }
    )


def postprocess(args: ar.PostprocessArgs[Parameters]) -> pd.DataFrame:
    """後処理の実装"""
    results = args.analysis_results.copy()
    results["rank"] = results["mean"].rank()
    return results


ac: ar.AnalysisContext = ar.read_context(
    params=Parameters,
    image_analysis_results=ImageAnalysisResults,
    manual_input=ar.ManualInput(
        params=Parameters(param1=PARAM1, param2="XXXX"),
        image_analysis_results={
            "activity_spots": DATA / "as.csv",
            "surrounding_spots": DATA / "ss.csv",
        },
        sample_names=DATA / "samples.csv",
    ),
    output_dir=OUT,
)
results: pd.DataFrame = ac.run_analysis(analyze=analyze, postprocess=postprocess)

# 以降の処理はローカル実行時のみ実行される。
results.to_csv(Path(OUT) / "results.csv", index=False)
if ac.last_run is not None:
    print("counts", ac.last_run.counts)
print("driver", os.getpid())
