"""Seed 003's runner (issue 11): 24 lanes in local parallel mode against a plain loop.

One analysis script (a bootstrap per lane, two figures) runs three ways, each a whole
process: ``loop`` calls ``analyze`` lane after lane in one process with no runner (what a
scientist writes without one); ``cold`` is ``databacked.analysisrun`` in local parallel
mode on an empty output folder (one lane process per lane, as many at a time as cores);
``cached`` is the same run again (no lane process starts). Goals: cold <= 0.7x the loop,
cached <= 0.2x. ``DATABACKED_BENCH_AR_LANES`` / ``_WORK`` change the lane count and the
bootstrap size per lane.

    python benchmarks/bench_analysisrun.py
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
PY = sys.executable
LANES = int(os.environ.get("DATABACKED_BENCH_AR_LANES", "24"))
WORK = int(os.environ.get("DATABACKED_BENCH_AR_WORK", "30000"))

SCRIPT = textwrap.dedent(
    """
    import os
    from pathlib import Path
    from typing import NamedTuple

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    from pydantic import BaseModel

    import databacked.analysisrun as ar

    DATA = Path(os.environ["BENCH_DATA"])
    OUT = Path(os.environ["BENCH_OUT"])


    class Params(BaseModel):
        resamples: int
        threshold: float = 10.0


    class Results(NamedTuple):
        spots: ar.Fields = ar.ImageAnalysisResultSpec(
            "spots", cleansing=ar.entity_filter("Activity Spots")
        )


    def analyze(args: ar.AnalyzeArgs[Params, Results]) -> pd.Series:
        spots = args.image_analysis_results.spots
        values = spots.data["Value"].to_numpy()
        rng = np.random.default_rng(0)
        chunks = [np.median(rng.choice(values, (500, values.size)), axis=1)
                  for _ in range(args.params.resamples // 500)]
        means = np.concatenate(chunks)  # bootstrap of the median
        per_field = [len(f) for f in spots]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(6, 3), dpi=80)
        ax1.hist(means, bins=40)
        ax2.scatter(spots.data["MultiPointIndex"], values, s=2)
        args.output(fig, f"{args.data_name}_summary.png", "summary")
        fig, ax = plt.subplots(figsize=(3, 3), dpi=80)
        ax.bar(range(1, 13), per_field)
        args.output(fig, f"{args.data_name}_fields.png", "fields")
        return pd.Series({"n": int(values.size), "mean": float(values.mean()),
                          "ci_low": float(np.quantile(means, 0.025)),
                          "ci_high": float(np.quantile(means, 0.975)),
                          "over": int((values > args.params.threshold).sum())})


    def postprocess(args: ar.PostprocessArgs[Params]) -> pd.DataFrame:
        table = args.analysis_results.copy()
        table["rank"] = table["mean"].rank()
        return table


    PARAMS = Params(resamples=int(os.environ["BENCH_WORK"]))
    if os.environ.get("BENCH_MODE") == "loop":
        # the plain loop: the same analyze, lane after lane, images written as it goes
        raw = pd.read_csv(DATA / "spots.csv", dtype={"Entity": str, "Filename": str})
        pairs = pd.read_csv(DATA / "samples.csv", dtype=str)
        spec = Results._field_defaults["spots"]
        lanes = ar.Lanes(ar.CleansedData(spec.cleanse(raw)), list(pairs["data"]))
        rows = []
        OUT.mkdir(parents=True, exist_ok=True)
        for data_name, sample in zip(pairs["data"], pairs["sample"]):
            output = ar.ImageCollector()
            row = analyze(ar.AnalyzeArgs(PARAMS, data_name, sample,
                                         Results(spots=lanes.get(data_name)), output))
            for name, image in output.images.items():
                (OUT / name).write_bytes(image)
            rows.append(row.to_dict() | {"data": data_name, "sample_name": sample})
        table = postprocess(ar.PostprocessArgs(PARAMS, pd.DataFrame(rows)))
    else:
        ac = ar.read_context(
            Params, Results,
            manual_input=ar.ManualInput(PARAMS, {"spots": DATA / "spots.csv"},
                                        DATA / "samples.csv"),
            output_dir=OUT,
        )
        table = ac.run_analysis(analyze=analyze, postprocess=postprocess)
    table.to_csv(OUT / "results.csv", index=False)
    """
)


def _data(folder: Path) -> None:
    import numpy as np
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    frames = []
    for lane in range(1, LANES + 1):
        n = 3000
        frames.append(
            pd.DataFrame(
                {
                    "MultiPointIndex": rng.integers(1, 13, n),
                    "Entity": rng.choice(["Activity Spots", "Surrounding Spots"], n),
                    "Value": rng.normal(10, 2, n),
                    "Filename": f"spotfinder_000_{lane:04d}.tif",
                }
            )
        )
    pd.concat(frames).to_csv(folder / "spots.csv", index=False)
    names = [f"{i:04d}" for i in range(1, LANES + 1)]
    pd.DataFrame({"data": names, "sample": [f"S{i}" for i in range(1, LANES + 1)]}).to_csv(
        folder / "samples.csv", index=False
    )


def _timed(script: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all its processes) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run(
        [PY, str(script)], env=env, capture_output=True, check=False, cwd=script.parent
    )
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-8:]
        raise RuntimeError("analysis failed:\n" + "\n".join(tail))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu


def _images(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def run() -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="databacked-bench-analysisrun-") as tmp:
        work = Path(tmp)
        _data(work / "data")
        script = work / "analysis.py"
        script.write_text(SCRIPT)
        base = {
            **os.environ,
            "BENCH_DATA": str(work / "data"),
            "BENCH_WORK": str(WORK),
            "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        }
        for name in ("ANALYSISRUN_METHOD", "ANALYSISRUN_MODE", "PSEUDO_NBENV"):
            base.pop(name, None)
        print(f"  plain loop over {LANES} lanes ...", flush=True)
        loop, loop_cpu = _timed(
            script, {**base, "BENCH_MODE": "loop", "BENCH_OUT": str(work / "loop")}
        )
        out = work / "local"
        shutil.rmtree(out, ignore_errors=True)
        env = {**base, "BENCH_OUT": str(out)}
        print("  local parallel, cold ...", flush=True)
        cold, cold_cpu = _timed(script, env)
        print("  local parallel, cached ...", flush=True)
        cached, cached_cpu = _timed(script, env)
        import pandas as pd

        same = _images(out) == _images(work / "loop") and pd.read_csv(out / "results.csv").equals(
            pd.read_csv(work / "loop" / "results.csv")
        )
        cores = os.cpu_count() or 1
        load = os.getloadavg()[0]
        for case, seconds, cpu, goal, limit in (
            ("cold", cold, cold_cpu, "<= 0.7x loop", 0.7),
            ("cached", cached, cached_cpu, "<= 0.2x loop", 0.2),
        ):
            ratio = seconds / loop
            rows.append(
                {
                    "section": "Analysis runs",
                    "case": f"local parallel, {LANES} lanes, {case} ({cores} cores)",
                    "seconds": seconds,
                    "baseline": "plain loop, one process",
                    "baseline_seconds": loop,
                    "ratio": ratio,
                    "goal": goal,
                    "goal_met": ratio <= limit and same,
                    "note": ("same table and image bytes as the loop" if same else "RESULTS DIFFER")
                    + f"; CPU {cpu:.1f} s vs loop {loop_cpu:.1f} s; load average {load:.1f}",
                }
            )
    return rows


if __name__ == "__main__":
    for found in run():
        print(json.dumps(found))
