"""``databacked worker``: a Celery worker (prefork pool) for the ``celery`` executor.

The worker needs the store's credentials from its environment; it never opens the catalog.
Broker, backend, queue and task timeout default to the ``[celery]`` settings, so a driver and
its workers share one configuration. A message on the broker is not trusted: the worker runs
only steps and spec transforms from the modules it may import (``--import``, ``[worker]
imports``, the folder it was started in), unpickles nothing unless started with
``--allow-pickle``, and with ``[worker] key`` (or ``DATABACKED_WORKER_KEY``) only signed
messages. ``--queues gpu`` makes a worker for the steps that say ``@db.step(queue="gpu")``:
it consumes only those queues (start it where the GPU is, with a ``--concurrency`` the GPU
can hold).
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
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queues",
            help="Consume these queues instead (comma-separated or repeated), e.g. gpu for "
            "the steps with @db.step(queue='gpu'); with --queue, that one too.",
        ),
    ] = None,
    task_timeout: Annotated[
        float | None,
        typer.Option(help="Longest a call may take, in seconds; the same as the driver's."),
    ] = None,
    imports: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            help="A module (with submodules) whose steps and transforms may run; repeatable. "
            "Modules in the folder the worker starts in may always run.",
        ),
    ] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="Accept pickled values: then anyone who can publish to the broker runs code.",
        ),
    ] = False,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Start a Celery worker that runs databacked calls sent with executor='celery://...'."""
    from celery import signals

    from databacked.executors.celery_app import check_broker, create_app
    from databacked.secrets import install_log_filter, redact
    from databacked.worker import WorkerPolicy, configure

    # Celery sets up its own log handlers: each gets the redaction filter once it exists.
    signals.after_setup_logger.connect(lambda logger, **_: install_log_filter(logger), weak=False)
    signals.after_setup_task_logger.connect(
        lambda logger, **_: install_log_filter(logger), weak=False
    )
    install_log_filter()
    policy = WorkerPolicy.from_settings(imports=imports or (), allow_pickle=allow_pickle)
    configure(policy)  # before the prefork pool starts: its processes inherit it
    config = settings().celery
    url = broker or config.broker
    if not url:
        raise ConfigError(
            "databacked worker needs a broker: pass --broker amqp://user:pass@host:5672// "
            "or set [celery] broker in databacked.toml (or DATABACKED_CELERY__BROKER)."
        )
    if url.startswith("celery://"):
        url = url[len("celery://") :]
    names = [q.strip() for given in queues or () for q in given.split(",") if q.strip()]
    if queue or not names:
        names.insert(0, queue or config.queue)
    names = list(dict.fromkeys(names))
    app = create_app(
        url,
        backend or config.backend,
        queue=names[0],
        queues=names,
        task_timeout=task_timeout or config.task_timeout,
    )
    check_broker(app, url)
    console.print(
        f"databacked worker: broker {redact(url)}, "
        f"queue{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}, imports "
        f"{', '.join(policy.imports) or '(project folder only)'}, project {policy.project}, "
        f"pickle {'allowed' if policy.allow_pickle else 'refused'}, "
        f"messages {'signed' if policy.key else 'unsigned'}",
        highlight=False,
    )
    argv = [
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency or os.cpu_count() or 1}",
        f"--queues={','.join(names)}",
        f"--loglevel={loglevel}",
        # Unique per process, so several workers on one machine are told apart.
        f"--hostname=databacked-{os.getpid()}@{socket.gethostname()}",
        # Mingle and gossip only slow start-up: databacked workers share nothing.
        "--without-mingle",
        "--without-gossip",
    ]
    app.worker_main(argv=argv)
