"""The watcher: new files run only their datums, reducers wait for whole plates, clean stops."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from databacked.catalog import Catalog
from databacked.examples import plate_screen as ps
from databacked.specs.runner import SpecRunResult
from databacked.store import Store
from databacked.watch import watch

TIMEOUT = 60.0
DATABACKED = str(Path(sys.executable).with_name("databacked"))

COUNTING_STEPS = """
from pathlib import Path

from databacked.examples.plate_screen import measure_site as _measure, plate_report


TEST = "{test}"  # part of the fingerprint: a catalog shared by tests never has these keys


def measure_site(files, plate, well, site):
    # One line per execution: the test counts how often each datum was computed.
    with open(Path(__file__).with_name("executions.log"), "a") as log:
        log.write(f"{{plate}}/{{well}}_s{{site}} {{TEST}}\\n")
    return _measure(files, plate, well, site)
"""


def _until(condition: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _ran(results: list[SpecRunResult], pipeline: str) -> int:
    return sum(r.counts().get(pipeline, {}).get("ran", 0) for r in results)


class Watcher:
    """``watch`` in a thread with a stop event; every run's result is kept."""

    def __init__(
        self,
        root: Path,
        store: Store | str,
        on_run: Callable[[SpecRunResult], None] | None = None,
        **kw: object,
    ) -> None:
        self.results: list[SpecRunResult] = []
        self.on_run = on_run or self.results.append
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.catalog = Catalog.open(root / "catalog.db")
        kw.setdefault("debounce", 0.1)

        def target() -> None:
            try:
                watch(
                    root / "pipelines",
                    store=store,
                    catalog=self.catalog,
                    executor="inline",
                    stop_event=self.stop,
                    on_run=self.on_run,
                    **kw,  # type: ignore[arg-type]
                )
            except BaseException as exc:  # surfaced by close()
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(TIMEOUT)
        self.catalog.close()
        assert not self.thread.is_alive(), "the watcher did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return ps.write_project(tmp_path / "screen", wells=1, sites=2)


def test_new_files_run_only_their_datums(project: Path) -> None:
    data = project / "data"
    ps.write_site(data / "raw", "plate1", "A01", 1)
    watcher = Watcher(project, Store(data))
    try:
        _until(lambda: (data / "measure/plate1/A01_s1.csv").exists(), "the first site")
        _until(lambda: watcher.results, "the first run to finish")
        assert not (data / "plate_report/plate1").exists()  # one of two sites: not complete

        ps.write_site(data / "raw", "plate1", "A01", 2)
        _until(lambda: (data / "plate_report/plate1/plot.png").exists(), "the plate report")
    finally:
        watcher.close()
    assert all(r.ok for r in watcher.results), [r.rows for r in watcher.results]
    assert _ran(watcher.results, "measure") == 2  # site 1 was not computed again
    assert _ran(watcher.results, "plate_report") == 1
    assert any(r.counts().get("measure") == {"ran": 1, "cached": 1} for r in watcher.results), [
        r.counts() for r in watcher.results
    ]
    frame = ps.results(data, plate="plate1")
    assert sorted(set(zip(frame["well"], frame["site"], strict=True))) == [("A01", 1), ("A01", 2)]


def test_reducer_fires_only_when_the_plate_is_complete(tmp_path: Path) -> None:
    root = ps.write_project(tmp_path / "screen", wells=2, sites=2)
    data = root / "data"
    measured_when_reduced: list[int] = []
    results: list[SpecRunResult] = []

    def on_run(result: SpecRunResult) -> None:
        results.append(result)
        if result.counts().get("plate_report", {}).get("ran"):
            measured_when_reduced.append(len(list((data / "measure/plate1").glob("*.csv"))))

    watcher = Watcher(root, Store(data), on_run=on_run)
    try:
        _until(lambda: results, "the first run")
        # The real generator: sites of one plate arriving 0.1 s apart, all channels each.
        ps.arrive(data / "raw", plates=["plate1"], wells=["A01", "A02"], delay=0.1)
        _until(lambda: (data / "plate_report/plate1/summary.csv").exists(), "the report")
    finally:
        watcher.close()
    assert measured_when_reduced == [4]
    assert _ran(results, "measure") == 4


def test_an_edited_spec_takes_effect(tmp_path: Path) -> None:
    root = ps.write_project(tmp_path / "screen", wells=1, sites=1)  # two channels per site
    data = root / "data"
    ps.write_site(data / "raw", "plate1", "A01", 1, channels=1)
    watcher = Watcher(root, Store(data))
    try:
        _until(lambda: watcher.results, "the first run")
        assert watcher.results[0].counts()["measure"] == {"waiting": 1}

        spec = root / "pipelines" / "screen.yml"
        spec.write_text(ps.spec_text(wells=1, sites=1, channels=1))  # one channel is a site
        _until(lambda: (data / "measure/plate1/A01_s1.csv").exists(), "the site measured")
    finally:
        watcher.close()
    assert _ran(watcher.results, "measure") == 1


def _screen_waiting_for_notes(tmp_path: Path, *, sites: int) -> tuple[Path, Path]:
    """A screen project with one site of well A01 on disk, and a pipeline over a repo
    ``notes`` that does not exist: (project folder, store folder)."""
    root = tmp_path / "screen"
    (root / "pipelines").mkdir(parents=True)
    (root / "counting_steps.py").write_text(COUNTING_STEPS.format(test=uuid.uuid4().hex))
    notes = "---\npipeline: notes_index\ninput: {repo: notes, glob: /*}\n"
    notes += "transform: {python: counting_steps:plate_report}\n"
    specs = ps.spec_text("counting_steps", wells=1, sites=sites) + notes
    (root / "pipelines/screen.yml").write_text(specs)
    data = root / "data"
    ps.write_site(data / "raw", "plate1", "A01", 1)
    return root, data


def test_a_missing_repo_holds_back_only_its_pipelines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, data = _screen_waiting_for_notes(tmp_path, sites=1)
    watcher = Watcher(root, Store(data))
    try:
        with caplog.at_level(logging.WARNING, logger="databacked"):
            _until(lambda: watcher.results, "the first run")
        assert "repo 'notes' does not exist" in caplog.text
    finally:
        watcher.close()
    assert watcher.results[0].counts() == {"measure": {"ran": 1}, "plate_report": {"ran": 1}}
    assert (root / "executions.log").read_text().split()[0] == "plate1/A01_s1"


def test_object_store_repo_is_polled(s3_bucket: str, tmp_path: Path) -> None:
    root = ps.write_project(tmp_path / "screen", wells=1, sites=1)
    store = Store(f"{s3_bucket}/screen")
    store.put_bytes("raw/README.txt", b"images arrive here\n")  # the repo exists: a first run
    watcher = Watcher(root, store, interval=0.2)
    try:
        _until(lambda: watcher.results, "the first run")  # so the images below are polled
        ps.write_site(store, "plate1", "A01", 1)
        _until(lambda: store.exists("plate_report/plate1/plot.png"), "the report on S3")
    finally:
        watcher.close()
    assert _ran(watcher.results, "measure") == 1
    assert ps.results(store, plate="plate1")["channel"].tolist() == [1, 2]


def _start(root: Path, catalog: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    # the databacked under test, whatever the working folder
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p or os.getcwd() for p in sys.path))
    return subprocess.Popen(
        [DATABACKED, "watch", "pipelines", "--store", "data", "--catalog", catalog,
         "--executor", "inline", "--debounce", "0.1"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, err


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:  # a failed test must not leave a watcher behind
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _leases(catalog: str) -> int:
    engine = sa.create_engine(catalog)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM leases")).scalar_one()
    finally:
        engine.dispose()


def test_sigterm_stops_a_watcher_cleanly(project: Path, procs: list[subprocess.Popen[str]]) -> None:
    data = project / "data"
    catalog = f"sqlite:///{project / 'catalog.db'}"
    ps.write_site(data / "raw", "plate1", "A01", 1)
    procs.append(proc := _start(project, catalog))
    _until(lambda: (data / "measure/plate1/A01_s1.csv").exists(), "the watcher's first run")

    code, out, err = _stop(proc)

    assert code == 0, err
    assert "Stopped after" in out
    assert _leases(catalog) == 0
    assert not [p for p in data.rglob("*") if p.name.startswith(".databacked-tmp-")]


def test_the_watch_command_shows_what_the_watcher_logs(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    root, data = _screen_waiting_for_notes(tmp_path, sites=2)
    procs.append(proc := _start(root, f"sqlite:///{root / 'catalog.db'}"))
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    _until(lambda: (data / "measure/plate1/A01_s1.csv").exists(), "the watcher's first run")
    (root / "pipelines/broken.yml").write_text("pipeline: broken\ninput: {repo: raw}\n")
    _until(lambda: any("still watching" in line for line in lines), "the failed run's error")
    (root / "pipelines/broken.yml").unlink()
    ps.write_site(data / "raw", "plate1", "A01", 2)
    _until(lambda: (data / "measure/plate1/A01_s2.csv").exists(), "a run after the error")

    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=TIMEOUT)
    reader.join(TIMEOUT)
    assert proc.returncode == 0, lines
    said = [" ".join(line.split()) for line in lines]
    waiting = (
        f"Warning: repo 'notes' does not exist in {data} yet; the pipelines reading it wait "
        "until files arrive there."
    )
    assert said.count(waiting) == 1, said
    [error] = [line for line in said if line.startswith("Error:")]
    assert "pipelines/broken.yml" in error and error.endswith("(still watching)")


def test_two_watchers_compute_each_datum_once(
    tmp_path: Path, catalog_url: str, procs: list[subprocess.Popen[str]]
) -> None:
    root = tmp_path / "screen"
    (root / "pipelines").mkdir(parents=True)
    (root / "counting_steps.py").write_text(COUNTING_STEPS.format(test=uuid.uuid4().hex))
    (root / "pipelines/screen.yml").write_text(ps.spec_text("counting_steps", wells=2, sites=2))
    data = root / "data"
    (data / "raw").mkdir(parents=True)
    with Catalog.open(catalog_url) as cat:
        before = len(cat.runs(limit=100_000))
        procs.extend([_start(root, catalog_url), _start(root, catalog_url)])
        _until(lambda: len(cat.runs(limit=100_000)) >= before + 2, "both watchers' first runs")

    ps.arrive(data / "raw", plates=["plate1", "plate2"], wells=["A01", "A02"], delay=0.05)
    for plate in ("plate1", "plate2"):
        _until(lambda p=plate: (data / f"plate_report/{p}/plot.png").exists(), f"{plate} report")
    results = [_stop(proc) for proc in procs]

    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    executions = [line.split()[0] for line in (root / "executions.log").read_text().splitlines()]
    assert len(executions) == 8
    assert sorted(set(executions)) == sorted(
        f"{plate}/{well}_s{site}"
        for plate in ("plate1", "plate2")
        for well in ("A01", "A02")
        for site in (1, 2)
    )
