"""Celery lifecycle on the real broker: a driver with no worker says so, and the calls of a
driver that is gone (Ctrl-C, finished, killed) are dropped unrun by a worker started later."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from databacked.executors.celery import CeleryExecutor, create_app

pytest.importorskip("celery")

from test_celery import celery_worker, modules, write_module  # noqa: F401

MARKER = """
from pathlib import Path

import databacked as db

@db.step  # workers run only steps (DESIGN section 11)
def touch(path):
    Path(path).write_text("ran")
    return "ran"
"""


@pytest.fixture(params=["amqp", "redis"])
def broker(request: pytest.FixtureRequest, redis_url: str) -> Iterator[dict[str, str | None]]:
    """A queue of its own on RabbitMQ (results in Redis) or on Redis; deleted afterwards."""
    url = request.getfixturevalue("amqp_url") if request.param == "amqp" else redis_url
    queue = f"databacked-life-{uuid.uuid4().hex[:12]}"
    backend = redis_url if request.param == "amqp" else None
    yield {"broker": url, "backend": backend, "queue": queue}
    app = create_app(url, backend, queue=queue)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)
    app.close()


def _executor(b: dict[str, str | None], **options: float) -> CeleryExecutor:
    return CeleryExecutor(address=b["broker"], backend=b["backend"], queue=str(b["queue"]),
                          **options)  # fmt: skip


def test_no_worker_on_the_queue_is_said_with_the_command_to_start_one(
    broker: dict[str, str | None],
    modules: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    mod = write_module(modules, "lifecycle", MARKER)
    with (
        caplog.at_level(logging.WARNING, logger="databacked"),
        _executor(broker, no_worker_warning=0.5) as ex,
    ):
        future = ex.submit(mod.touch, str(modules / "never.txt"))
        deadline = time.monotonic() + 30
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not future.done()
    (record,) = [r for r in caplog.records if r.name == "databacked.executors.celery"]
    message = record.getMessage()
    assert f"queue {broker['queue']!r}" in message
    assert f"databacked worker --broker {broker['broker'].split('://')[0]}" in message
    assert "guest:guest" not in message


def test_calls_of_a_gone_driver_are_dropped_unrun_by_a_later_worker(
    broker: dict[str, str | None],
    modules: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    mod = write_module(modules, "lifecycle", MARKER)
    marker = tmp_path / "ran.txt"
    ex = _executor(broker, no_worker_warning=0)
    future = ex.submit(mod.touch, str(marker))
    deadline = time.monotonic() + 30
    while not future.running() and time.monotonic() < deadline:  # sent to the broker
        time.sleep(0.05)
    ex.close()  # as after Ctrl-C or the end of the run: the driver is gone
    log = tmp_path / "worker.log"
    with celery_worker(str(broker["broker"]), str(broker["queue"]), log,
                       backend=broker["backend"], project=modules):  # fmt: skip
        deadline = time.monotonic() + 60
        while "dropped unrun" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    assert "dropped unrun" in log.read_text(), log.read_text()[-3000:]
    assert not marker.exists()


def test_a_live_driver_runs_its_calls(
    broker: dict[str, str | None],
    modules: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    mod = write_module(modules, "lifecycle", MARKER)
    marker = tmp_path / "ran.txt"
    log = tmp_path / "worker.log"
    worker = celery_worker(str(broker["broker"]), str(broker["queue"]), log,
                           backend=broker["backend"], project=modules)  # fmt: skip
    with worker, _executor(broker) as ex:
        assert ex.submit(mod.touch, str(marker)).result(timeout=60) == "ran"
    assert marker.read_text() == "ran"
