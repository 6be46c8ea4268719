"""The configuration's [dask] section reaches the dask executor that db.run builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from databacked.config import load_settings
from databacked.engine.api import _executor_options


def test_dask_section_from_databacked_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "databacked.toml").write_text(
        'executor = "dask"\n[dask]\ncluster_class = "dask_jobqueue.SLURMCluster"\nscale = 20\n'
        '[dask.cluster_kwargs]\nqueue = "imaging"\ncores = 8\n'
    )
    settings = load_settings()
    options = _executor_options(settings.executor, settings)
    assert options["cluster_class"] == "dask_jobqueue.SLURMCluster"
    assert options["scale"] == 20
    assert options["cluster_kwargs"] == {"queue": "imaging", "cores": 8}
    assert "scheduler_file" not in options  # unset values are left to the executor's defaults


def test_scheduler_file_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABACKED_DASK__SCHEDULER_FILE", "/shared/sched.json")
    settings = load_settings()
    assert _executor_options("dask", settings)["scheduler_file"] == "/shared/sched.json"
    # other executors get nothing from the dask section
    assert _executor_options("processes", settings) == {}
    assert _executor_options("dask://127.0.0.1:8786", settings) == {}


def test_celery_section_reaches_a_broker_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "databacked.toml").write_text(
        '[celery]\nbroker = "amqp://guest:guest@127.0.0.1:5672//"\n'
        'backend = "redis://127.0.0.1:6379/0"\nqueue = "screens"\n'
    )
    settings = load_settings()
    by_url = _executor_options("celery://amqp://guest:guest@127.0.0.1:5672//", settings)
    assert by_url["backend"] == "redis://127.0.0.1:6379/0"
    assert by_url["queue"] == "screens"
    assert "broker" not in by_url  # the URL itself names the broker
    by_name = _executor_options("celery", settings)
    assert by_name["broker"] == "amqp://guest:guest@127.0.0.1:5672//"
