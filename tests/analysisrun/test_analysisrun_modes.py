"""Seed 003's example in its three modes, and the data-backed lanes of local runs."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pandas as pd
from arhelpers import (
    EXAMPLE,
    lane_log,
    make_tar,
    read_tar,
    run_script,
    write_data,
)

from databacked.catalog import Catalog
from databacked.testing import services

LANES = ["0001", "0002", "0003"]
SAMPLES = {"0001": "S1", "0002": "S2", "0003": "S3"}


def _ok(proc) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")


def _driver(proc) -> str:  # type: ignore[no-untyped-def]
    return proc.stdout.decode().split("driver ")[1].split()[0]


def _images(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.png"))}


def _orchestrate(data: Path, out: Path) -> tuple[pd.DataFrame, dict[str, bytes]]:
    """What the seed's orchestrator does: one analyze process per lane with the raw tables
    pickled, then one postprocess process with all lanes' results pickled."""
    raw = {
        name: pd.read_csv(data / f"{key}.csv", dtype={"Filename": str, "Entity": str})
        for name, key in (("activity_spots", "as"), ("surrounding_spots", "ss"))
    }
    series, images = [], {}
    for lane in LANES:
        entries = {
            "data_name": lane.encode(),
            "sample_name": SAMPLES[lane].encode(),
            "params": b'{"param1": 1, "param2": "XXXX"}',
        }
        for name, frame in raw.items():
            entries[f"image_analysis_results/{name}"] = pickle.dumps(frame)
        proc = run_script(data, out, stdin=make_tar(entries), ANALYSISRUN_METHOD="analyze")
        _ok(proc)
        answer = read_tar(proc.stdout)
        assert set(answer) == {"analysis_result", f"images/{lane}_fields.png"}
        # what analyze printed went to stderr, the tar stayed clean
        assert f"analysing {lane}" in proc.stderr.decode()
        result = pickle.loads(answer["analysis_result"])
        assert isinstance(result, pd.Series)
        series.append(result)
        images[f"{lane}_fields.png"] = answer[f"images/{lane}_fields.png"]
    entries = {
        "analysis_results": pickle.dumps(pd.DataFrame(series).reset_index(drop=True)),
        "params": b'{"param1": 1, "param2": "XXXX"}',
    }
    proc = run_script(data, out, stdin=make_tar(entries), ANALYSISRUN_METHOD="postprocess")
    _ok(proc)
    answer = read_tar(proc.stdout)
    assert set(answer) == {"result_csv", *(f"result_json/{lane}" for lane in LANES)}
    assert b'"sample_name":"S2"' in answer["result_json/0002"]
    return pd.read_csv(io.BytesIO(answer["result_csv"]), dtype={"data": str}), images


def test_the_three_modes_give_the_same_table_and_image_bytes(data: Path, tmp_path: Path) -> None:
    local, notebook, distributed = tmp_path / "local", tmp_path / "notebook", tmp_path / "dist"
    local_run = run_script(data, local)
    _ok(local_run)
    notebook_run = run_script(data, notebook, PSEUDO_NBENV="1")
    _ok(notebook_run)
    dist_table, dist_images = _orchestrate(data, distributed)

    local_table = pd.read_csv(local / "results.csv", dtype={"data": str})
    assert list(local_table["data"]) == LANES
    assert list(local_table["sample_name"]) == ["S1", "S2", "S3"]
    assert set(local_table.columns) >= {"spots", "mean", "around", "method", "label", "rank"}
    assert (local_table["method"] == "spotfinder").all()
    assert (local / "results.csv").read_bytes() == (notebook / "results.csv").read_bytes()
    pd.testing.assert_frame_equal(local_table, dist_table)

    assert sorted(_images(local)) == [f"{lane}_fields.png" for lane in LANES]
    assert _images(local) == _images(notebook) == dist_images
    # lanes ran in lane processes locally, in the driver in the notebook
    local_pids = {line.split()[0] for line in lane_log(local)}
    notebook_pids = {line.split()[0] for line in lane_log(notebook)}
    assert _driver(local_run) not in local_pids and 1 <= len(local_pids) <= 3
    assert notebook_pids == {_driver(notebook_run)}


def test_lanes_are_data_backed(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _ok(run_script(data, out))
    first = (out / "results.csv").read_bytes()
    images = _images(out)
    assert sorted(line.split()[1] for line in lane_log(out)) == LANES

    # same inputs: no lane process starts, same table, same images
    proc = run_script(data, out)
    _ok(proc)
    assert b"'cached': 3" in proc.stdout and b"'ran': 0" in proc.stdout
    assert len(lane_log(out)) == 3
    assert (out / "results.csv").read_bytes() == first

    # one lane's data changes: only that lane runs again
    write_data(data, bump="0002")
    (out / "0001_fields.png").unlink()  # an exported image removed by hand comes back
    _ok(run_script(data, out))
    assert [line.split()[1] for line in lane_log(out)[3:]] == ["0002"]
    assert _images(out)["0001_fields.png"] == images["0001_fields.png"]
    changed = pd.read_csv(out / "results.csv", dtype={"data": str}).set_index("data")
    before = pd.read_csv(io.BytesIO(first), dtype={"data": str}).set_index("data")
    assert changed.loc["0001", "mean"] == before.loc["0001", "mean"]
    assert changed.loc["0002", "mean"] != before.loc["0002", "mean"]

    # a changed parameter runs every lane again
    _ok(run_script(data, out, EXAMPLE_PARAM1="2"))
    assert sorted(line.split()[1] for line in lane_log(out)[4:]) == LANES

    # results and images are in the store and the catalog under output_dir
    with Catalog.open(f"sqlite:///{out / '.databacked' / 'catalog.db'}") as catalog:
        paths = {row.path for row in catalog.artifacts(str(out))}
        assert {f"{lane}_fields.png" for lane in LANES} <= paths
        lane_outputs = [p for p in paths if p.startswith(".databacked/objects/analysisrun_lane/")]
        assert len(lane_outputs) == 2 * 7  # result + images of 3 + 1 + 3 lane calls
        result_path = next(p for p in lane_outputs if p.endswith("-result.parquet"))
        lineage = catalog.lineage(str(out), result_path)
        assert lineage[0].call is not None and lineage[0].call.step == "analysisrun_lane"
        # an image leads back to the lane call that drew it
        steps = [row.call.step for row in catalog.lineage(str(out), "0003_fields.png") if row.call]
        assert steps == ["analysisrun_export", "analysisrun_lane"]


def test_a_failing_lane_exits_1_with_the_message_and_the_traceback(
    data: Path, tmp_path: Path
) -> None:
    # distributed: the error entry, the Japanese sentence, the traceback on stderr
    entries = {
        "data_name": b"0002",
        "sample_name": b"S2",
        "params": b'{"param1":1,"param2":"x"}',
        "image_analysis_results/activity_spots": (data / "as.csv").read_bytes(),
        "image_analysis_results/surrounding_spots": (data / "ss.csv").read_bytes(),
    }
    proc = run_script(
        data,
        tmp_path / "dist",
        stdin=make_tar(entries),
        ANALYSISRUN_METHOD="analyze",
        EXAMPLE_FAIL_LANE="0002",
    )
    assert proc.returncode == 1
    answer = read_tar(proc.stdout)
    message = "ターゲット 0002 (S2) の解析処理中にエラーが発生しました。"
    assert answer["error"].decode() == message
    stderr = proc.stderr.decode()
    assert "Traceback (most recent call last)" in stderr
    assert "ValueError: lane 0002 cannot be analysed" in stderr
    assert message in stderr

    # local: the summary names the lane, the lane's traceback is shown, exit 1
    out = tmp_path / "local"
    proc = run_script(data, out, EXAMPLE_FAIL_LANE="0002")
    assert proc.returncode == 1
    stderr = proc.stderr.decode()
    assert "解析中にエラーが発生しました。" in stderr and "- 0002 (S2)" in stderr
    assert "ValueError: lane 0002 cannot be analysed" in stderr
    assert not (out / "results.csv").exists()
    # the lanes that worked are kept: fixing the failure runs only the failed lane
    (out / "lanes.log").unlink()
    _ok(run_script(data, out))
    assert [line.split()[1] for line in lane_log(out)] == ["0002"]


def test_distributed_analyze_and_postprocess_with_csv_entries(data: Path, tmp_path: Path) -> None:
    entries = {
        "data_name": b"0003",
        "sample_name": b"S3",
        "params": b'{"param1":1,"param2":"x"}',
        "image_analysis_results/activity_spots": (data / "as.csv").read_bytes(),
        "image_analysis_results/surrounding_spots": (data / "ss.csv").read_bytes(),
    }
    proc = run_script(
        data,
        tmp_path,
        stdin=make_tar(entries),
        ANALYSISRUN_METHOD="analyze",
        ANALYSISRUN_ENCODING="csv",
    )
    _ok(proc)
    answer = read_tar(proc.stdout)
    assert set(answer) == {"analysis_result", "images/0003_fields.png"}
    row = pd.read_csv(io.BytesIO(answer["analysis_result"]), dtype={"data": str})
    assert row.loc[0, "data"] == "0003" and row.loc[0, "sample_name"] == "S3"
    assert row.loc[0, "method"] == "spotfinder" and row.loc[0, "label"] == "x"
    assert answer["images/0003_fields.png"][:8] == b"\x89PNG\r\n\x1a\n"

    # postprocess with one CSV per lane under analysis_results/ (analysisrun's later form)
    lanes = {
        f"analysis_results/{lane}": f"spots,mean,data,sample_name\n{i},{i}.5,{lane},S{i}\n".encode()
        for i, lane in enumerate(LANES, 1)
    }
    lanes["params"] = b'{"param1":1,"param2":"x"}'
    proc = run_script(data, tmp_path, stdin=make_tar(lanes), ANALYSISRUN_METHOD="postprocess")
    _ok(proc)
    answer = read_tar(proc.stdout)
    table = pd.read_csv(io.BytesIO(answer["result_csv"]), dtype={"data": str})
    assert list(table["data"]) == LANES and list(table["rank"]) == [1.0, 2.0, 3.0]
    assert set(answer) == {"result_csv", *(f"result_json/{lane}" for lane in LANES)}


def test_lane_calls_on_other_executors_share_the_cache(data: Path, tmp_path: Path) -> None:
    """Lanes through the subprocess worker protocol, then on dask, then cached locally."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        services.unavailable("dask.distributed is missing: pip install 'databacked[dask]'")
    script = tmp_path / "with_executor.py"
    script.write_text(
        EXAMPLE.read_text().replace(
            "    output_dir=OUT,",
            '    output_dir=OUT, executor=os.environ.get("EXAMPLE_EXECUTOR"),',
        )
    )
    out = tmp_path / "out"
    proc = run_script(data, out, script=script, EXAMPLE_EXECUTOR="subprocess")
    _ok(proc)
    assert b"'ran': 3" in proc.stdout
    images = _images(out)
    proc = run_script(data, out, script=script, EXAMPLE_EXECUTOR="dask", EXAMPLE_PARAM1="2")
    _ok(proc)
    assert b"'ran': 3" in proc.stdout
    assert _images(out) == images  # the figures do not depend on param1
    first = (out / "results.csv").read_bytes()
    proc = run_script(data, out, script=script, EXAMPLE_PARAM1="2")  # threads, the default
    _ok(proc)
    assert b"'cached': 3" in proc.stdout
    assert (out / "results.csv").read_bytes() == first


def test_a_lane_process_that_dies_fails_only_its_lane(data: Path, tmp_path: Path) -> None:
    script = tmp_path / "crashing.py"
    script.write_text(
        EXAMPLE.read_text().replace(
            '    if args.data_name == os.environ.get("EXAMPLE_FAIL_LANE"):',
            '    if args.data_name == "0002":\n        os._exit(3)\n'
            '    if args.data_name == os.environ.get("EXAMPLE_FAIL_LANE"):',
        )
    )
    out = tmp_path / "out"
    proc = run_script(data, out, script=script, ANALYSISRUN_LANG="en")
    assert proc.returncode == 1
    stderr = proc.stderr.decode()
    assert "The analysis failed for these targets:" in stderr and "- 0002 (S2)" in stderr
    assert "the lane process died (exit 3)" in stderr
    assert sorted(line.split()[1] for line in lane_log(out)) == LANES
    # the other lanes were kept: the next run tries lane 0002 alone
    proc = run_script(data, out, script=script)
    assert proc.returncode == 1
    assert [line.split()[1] for line in lane_log(out)[3:]] == ["0002"]
