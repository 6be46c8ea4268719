"""``databacked worker``: a Celery worker (prefork pool) for the ``celery`` executor.

The worker needs the store's credentials from its environment and the steps' modules on
its ``PYTHONPATH``; it never opens the catalog. Broker, backend, queue and task timeout
default to the ``[celery]`` settings, so a driver and its workers share one configuration.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer

from databacked.cli.common import console, settings
from databacked.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the ``worker`` command to the CLI application."""
    app.command("worker")(worker)


def worker(
    *,
    broker: Annotated[
        str | None,
        typer.Option(
            help="Broker URL, e.g. amqp://guest:guest@host:5672// or redis://host:6379/0."
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="Result backend URL (default: the Redis broker itself, else rpc://)."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default: cores).")
    ] = None,
    queue: Annotated[
        str | None, typer.Option(help="Queue to consume (default: settings, 'databacked').")
    ] = None,
    task_timeout: Annotated[
        float | None,
        typer.Option(help="Longest a call may take, in seconds; the same as the driver's."),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Start a Celery worker that runs databacked calls sent with executor='celery://...'."""
    from databacked.executors.celery import check_broker, create_app, redact

    config = settings().celery
    url = broker or config.broker
    if not url:
        raise ConfigError(
            "databacked worker needs a broker: pass --broker amqp://user:pass@host:5672// "
            "or set [celery] broker in databacked.toml (or DATABACKED_CELERY__BROKER)."
        )
    if url.startswith("celery://"):
        url = url[len("celery://") :]
    name = queue or config.queue
    app = create_app(
        url,
        backend or config.backend,
        queue=name,
        task_timeout=task_timeout or config.task_timeout,
    )
    check_broker(app, url)
    console.print(f"databacked worker: broker {redact(url)}, queue {name!r}", highlight=False)
    argv = [
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency or os.cpu_count() or 1}",
        f"--queues={name}",
        f"--loglevel={loglevel}",
        # Unique per process, so several workers on one machine are told apart.
        f"--hostname=databacked-{os.getpid()}@{socket.gethostname()}",
        # Mingle and gossip only slow start-up: databacked workers share nothing.
        "--without-mingle",
        "--without-gossip",
    ]
    app.worker_main(argv=argv)
