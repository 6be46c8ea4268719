"""The Celery application both sides build, and the one task a worker runs.

The driver (``CeleryExecutor``) and ``databacked worker`` build the same application with
:func:`create_app`: JSON messages only, late acknowledgement with redelivery when a worker is
lost, and queues declared with the same arguments on both sides (RabbitMQ refuses to
redeclare a queue otherwise). The task, :func:`run_wire`, decodes a call tar, serves it as
``python -m databacked.worker`` would, and answers with a tar; a malformed or refused call is
answered, never raised.
"""

from __future__ import annotations

import base64
import gzip
import io
import logging
from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu import Queue

from databacked.errors import ExecutorError, WireError
from databacked.executors.lifecycle import DROPPED, driver_alive, is_redis
from databacked.executors.wire import resolve
from databacked.secrets import redact

log = logging.getLogger("databacked.executors.celery")  # one logger for the Celery side

TASK = "databacked.run_wire"
"""The one Celery task: a base64 call tar in, ``{"answer": base64 tar}`` or ``{"refused": ...}``."""
DEFAULT_QUEUE = "databacked"
DEFAULT_TASK_TIMEOUT = 24 * 3600.0
_MARGIN = 600.0
"""Seconds a broker waits for an unacknowledged call beyond the task timeout."""
# The worker-side body, named by import string: executors must not import the top layer.
_SERVE = "databacked.worker:serve"


def broker_url(address: str) -> str:
    """The broker URL of an executor address: ``celery://amqp://...`` -> ``amqp://...``."""
    if address.startswith("celery://"):
        return address[len("celery://") :]
    return address


def default_backend(broker: str) -> str:
    """Where results go when no backend is named: the Redis broker itself, else ``rpc://``."""
    return broker if broker.split("://", 1)[0] in {"redis", "rediss"} else "rpc://"


def create_app(
    broker: str,
    backend: str | None = None,
    *,
    queue: str = DEFAULT_QUEUE,
    queues: Sequence[str] = (),
    task_timeout: float = DEFAULT_TASK_TIMEOUT,
    connect_timeout: float = 4.0,
) -> Celery:
    """The Celery application shared by the driver and ``databacked worker``.

    ``queue`` is where calls go by default; ``queues`` are declared too (those a worker
    consumes, or steps name). Both sides must build it with the same ``task_timeout``:
    RabbitMQ refuses to redeclare a queue with other arguments.
    """
    app = Celery("databacked", broker=broker, backend=backend or default_backend(broker))
    transport: dict[str, Any] = {}
    if is_redis(broker):
        transport["visibility_timeout"] = int(task_timeout + _MARGIN)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_default_queue=queue,
        task_queues=[declared(app, name, task_timeout) for name in dict.fromkeys([queue, *queues])],
        broker_transport_options=transport,
        broker_connection_timeout=connect_timeout,
        broker_connection_retry_on_startup=True,
        redis_socket_connect_timeout=connect_timeout,
        # A lost connection means the broker redelivers the call: stop running it here.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        result_expires=int(task_timeout + _MARGIN),
        worker_hijack_root_logger=False,
    )
    app.task(name=TASK, acks_late=True, reject_on_worker_lost=True)(run_wire)
    return app


def declared(app: Celery, name: str, task_timeout: float) -> Queue:
    """The queue ``name`` as the driver and every worker declare it (same arguments)."""
    arguments: dict[str, Any] = {}
    if not is_redis(app.conf.broker_url or ""):
        # Redis redelivers an unacknowledged call after the visibility timeout; RabbitMQ
        # cancels a consumer holding a call past its consumer timeout: both outlast a step.
        arguments["x-consumer-timeout"] = int((task_timeout + _MARGIN) * 1000)
    return Queue(name, routing_key=name, queue_arguments=arguments or None)


def check_broker(app: Celery, url: str, timeout: float = 4.0) -> None:
    """Fail now, within ``timeout`` seconds, rather than hang on the first call."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as exc:
        raise ExecutorError(
            f"Cannot reach the Celery broker at {redact(url)}: {exc}. Check that RabbitMQ "
            "(or Redis) runs there and that the URL and credentials are right."
        ) from exc


def run_wire(payload: str, driver: str | None = None) -> dict[str, str]:
    """The task body on a worker: decode the call tar, serve it, encode the answer tar.

    A call whose driver is gone (interrupted, finished, killed) is dropped unrun: nobody
    would record its result, and it would rewrite outputs behind the user's back.
    """
    if driver and not driver_alive(_current_app(), driver):
        log.warning("Dropped a call of driver %s, which is gone; nothing was written.", driver)
        return {"refused": DROPPED}
    serve = resolve(_SERVE)
    try:
        tar = base64.b64decode(payload, validate=True)
    except (ValueError, TypeError) as exc:
        return {"refused": f"The call is not base64 text ({exc}); send what CeleryExecutor sends."}
    try:
        answer = serve(io.BytesIO(tar))
    except WireError as exc:
        # A malformed or refused call is answered, not raised: Celery would serialise the
        # exception. Nothing of it ran, and the worker goes on with the next message.
        reason = " ".join(str(exc).split())
        log.warning("databacked worker refused a message: %s", reason)
        return {"refused": reason}
    return {"answer": _pack(answer)}


def _current_app() -> Celery:
    from celery import current_app

    return current_app._get_current_object()  # type: ignore[no-any-return]


def _pack(tar: bytes) -> str:
    """A tar as JSON-safe text: gzip (tar padding is mostly zeros), then base64; the reading
    side's ``read_tar`` detects the compression itself."""
    return base64.b64encode(gzip.compress(tar, compresslevel=1, mtime=0)).decode("ascii")


__all__ = [
    "DEFAULT_QUEUE",
    "DEFAULT_TASK_TIMEOUT",
    "TASK",
    "broker_url",
    "check_broker",
    "create_app",
    "declared",
    "default_backend",
    "run_wire",
]
