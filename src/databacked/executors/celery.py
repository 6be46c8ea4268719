"""The ``celery`` executor: calls travel through a Celery broker (RabbitMQ or Redis).

Messages are JSON only: a call is the wire protocol's tar (``executors/wire.py``), base64 in
a JSON string, and so is its answer in the result backend -- nothing is unpickled from the
queue. Workers (``databacked worker --broker URL``) run a call through the same code path as
``python -m databacked.worker``, under the policy the worker was started with (what it may
import, no pickle unless ``--allow-pickle``, signed messages only when a key is set); they
need the store, never the catalog. ``acks_late`` with
``task_reject_on_worker_lost`` and a prefetch of one mean a worker killed mid-call has its
call redelivered to another worker rather than lost.

Placement: a step's ``queue=`` sends its calls to that queue, which only the workers started
with ``databacked worker --queues NAME`` consume (resources are a matter of which workers
consume which queue: Celery counts none). A call past its timeout is stopped inside the worker
(the prefork pool runs it in a child's main thread, where the timer works); a task still
running well past the sum of its calls' timeouts (``Placement.limit``: a call stuck in C code)
is killed by Celery's hard time limit, which replaces the pool process.

One background thread per executor sends the calls and collects the results, so a run of
10,000 calls does not mean 10,000 waiting threads.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any

from databacked.errors import ExecutorError, WireError
from databacked.executors.base import BaseExecutor, ItemFailed, Placement
from databacked.executors.celery_app import (
    DEFAULT_QUEUE,
    DEFAULT_TASK_TIMEOUT,
    TASK,
    _pack,
    broker_url,
    check_broker,
    create_app,
    declared,
    run_wire,
)
from databacked.executors.lifecycle import (
    DROPPED,
    Liveness,
    WorkerWatch,
    consumers,
    driver_alive,
)
from databacked.executors.remote import decode_answer, encode_call
from databacked.executors.signing import worker_key
from databacked.executors.wire import (
    Limits,
)
from databacked.secrets import redact

log = logging.getLogger("databacked.executors.celery")
_READY = {"SUCCESS", "FAILURE", "REVOKED"}


class CeleryExecutor(BaseExecutor):
    """Sends calls to Celery workers through a broker; results come back as JSON.

    >>> with CeleryExecutor(address="amqp://guest:guest@127.0.0.1:5672//") as ex:  # doctest: +SKIP
    ...     ex.submit(operator.add, 2, 3).result()
    5
    """

    name = "celery"

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        broker: str | None = None,
        backend: str | None = None,
        queue: str = DEFAULT_QUEUE,
        task_timeout: float = DEFAULT_TASK_TIMEOUT,
        connect_timeout: float = 4.0,
        allow_pickle: bool = False,
        limits: Limits | None = None,
        capture_limit: int = 64 * 1024,
        poll_interval: float = 0.05,
        key: str | bytes | None = None,
        no_worker_warning: float = 30.0,
    ) -> None:
        super().__init__()
        url = broker or (broker_url(address) if address else None)
        if not url:
            raise ExecutorError(
                "The celery executor needs a broker URL: executor='celery://amqp://host//' or "
                "broker= (or [celery] broker in databacked.toml)."
            )
        if workers is not None and workers < 1:
            raise ExecutorError(f"The celery executor needs workers >= 1, not {workers}.")
        self.broker = url
        self.max_workers = workers or os.cpu_count() or 1
        self.queue = queue
        self.task_timeout = task_timeout
        self.allow_pickle = allow_pickle
        self.limits = limits or Limits()
        self.capture_limit = capture_limit
        self.poll_interval = poll_interval
        self.key = worker_key(key)
        self.app = create_app(
            url, backend, queue=queue, task_timeout=task_timeout, connect_timeout=connect_timeout
        )
        check_broker(self.app, url, connect_timeout)
        self.no_worker_warning = no_worker_warning
        self._told: set[str] = set()
        self.driver = uuid.uuid4().hex
        try:
            self._liveness = Liveness(self.app, self.driver)
        except Exception as exc:
            raise ExecutorError(
                f"The celery executor could not register with the broker at {redact(url)}: "
                f"{exc}; check that it runs."
            ) from exc
        self._inbox: SimpleQueue[_Message | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="databacked-celery", daemon=True)
        self._thread.start()

    # --- submitting ------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on a Celery worker; the future holds its result or exception."""
        return self._submit(fn, [tuple(args)], batch=False)

    def submit_batch(self, fn: Callable[..., Any], batch: Sequence[tuple[Any, ...]]) -> Future[Any]:
        """One Celery task runs ``fn`` over every argument tuple; see ``base.run_batch``."""
        return self._submit(fn, [tuple(args) for args in batch], batch=True)

    def place(self, placement: Placement, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on a worker consuming ``placement.queue``, killed by Celery's hard
        time limit at ``placement.limit`` (the calls stop at their own timeouts before)."""
        return self._submit(fn, [tuple(args)], batch=False, placement=placement)

    def check_resources(self, owner: str, needs: Mapping[str, float]) -> None:
        """Celery counts no resources: say so once per step (they go by queue)."""
        if owner not in self._told:
            self._told.add(owner)
            log.warning(
                "%s asks for %s, which the celery executor does not count: it sends a step's "
                "calls to the queue the step names (@db.step(queue='gpu')), and the workers "
                "consuming it (databacked worker --queues gpu --concurrency N) must be sized "
                "for them.",
                owner,
                ", ".join(f"{kind}={amount:g}" for kind, amount in needs.items()),
            )

    def _submit(
        self,
        fn: Callable[..., Any],
        items: list[tuple[Any, ...]],
        batch: bool,
        placement: Placement | None = None,
    ) -> Future[Any]:
        self._check_open()
        future: Future[Any] = Future()
        try:
            payload = _pack(self.encode(fn, items))
        except WireError as exc:
            # Like a failed call, not a crash of the run: the scheduler records it.
            future.set_exception(ExecutorError(f"The celery executor cannot send this call: {exc}"))
            return future
        self._inbox.put(_Message(payload, future, batch, placement or Placement()))
        return future

    def encode(self, fn: Callable[..., Any], items: Sequence[Sequence[Any]]) -> bytes:
        """The call tar for ``fn`` over ``items``, as ``python -m databacked.worker`` reads it."""
        return encode_call(
            fn,
            items,
            allow_pickle=self.allow_pickle,
            capture_limit=self.capture_limit,
            key=self.key,
        )

    def decode(self, answer: bytes) -> list[tuple[bool, Any, str]]:
        """(ok, value or exception, worker traceback) per item of an answer tar."""
        return decode_answer(
            answer,
            limits=self.limits,
            allow_pickle=self.allow_pickle,
            executor="celery",
            key=self.key,
        )

    # --- the background thread -------------------------------------------------------------

    def _loop(self) -> None:
        """Send what was submitted, collect what is ready; all Celery I/O stays on this thread
        (the ``rpc://`` backend reads replies on the thread that sent the calls)."""
        pending: dict[str, _Sent] = {}
        stopping = False
        liveness = self._liveness
        watch = WorkerWatch(self, redact(self.broker))
        backend = self.app.backend  # per thread in Celery: this one is the thread's own
        if hasattr(backend, "result_consumer"):
            # Results are read by polling (one MGET for all); a pub/sub subscription per call
            # that nothing drains would only fill Redis's output buffer for this client.
            backend.on_task_call = _no_subscription
        while not (stopping and not pending):
            try:
                wait = self.poll_interval if pending else None
                message = self._inbox.get(timeout=wait)
                while True:
                    if message is None:
                        stopping = True
                    else:
                        liveness.renew()  # before a worker can ask about this driver
                        self._send(message, pending)
                    message = self._inbox.get_nowait()
            except Empty:
                pass
            if stopping:
                # Queued calls of this run go too: revoked for the workers now listening,
                # and dropped by any later worker, which finds this driver gone.
                liveness.end()
                self._revoke(list(pending))
                for sent in pending.values():
                    sent.future.cancel() or sent.future.set_exception(_closed())
                    _forget(sent.result)
                pending.clear()
                break
            liveness.renew()
            if pending:
                answered = self._collect(pending)
                watch.check({sent.queue for sent in pending.values()}, answered)

    def _send(self, message: _Message, pending: dict[str, _Sent]) -> None:
        future, placement = message.future, message.placement
        if not future.set_running_or_notify_cancel():
            return
        queue = placement.queue or self.queue
        try:
            if queue not in self.app.amqp.queues:
                self.app.amqp.queues.add(declared(self.app, queue, self.task_timeout))
            result = self.app.send_task(
                TASK,
                args=[message.payload],
                kwargs={"driver": self.driver},
                queue=queue,
                time_limit=placement.limit,
            )
        except Exception as exc:
            future.set_exception(
                ExecutorError(
                    f"The celery executor could not send a call to {redact(self.broker)}: "
                    f"{exc}; check that the broker is running."
                )
            )
            return
        pending[result.id] = _Sent(result, future, message.batch, queue, placement)

    def _collect(self, pending: dict[str, _Sent]) -> set[str]:
        """Settle the futures of finished tasks; the queues that answered."""
        try:
            ready = self._ready(list(pending))
        except Exception as exc:
            error = ExecutorError(
                f"The celery executor lost its result backend ({exc}); check that it runs."
            )
            for sent in pending.values():
                sent.future.set_exception(error)
            pending.clear()
            return set()
        answered = set()
        for task_id, (status, value) in ready.items():
            sent = pending.pop(task_id)
            answered.add(sent.queue)
            _forget(sent.result)
            try:
                if _time_limit_exceeded(status, value) and sent.placement.timed:
                    raise sent.placement.overrun()
                sent.future.set_result(self._answer(status, value, sent.batch))
            except BaseException as exc:
                sent.future.set_exception(exc)
        return answered

    def _ready(self, ids: list[str]) -> dict[str, tuple[str, Any]]:
        """(status, result) of the finished tasks among ``ids``; one MGET on key-value backends."""
        backend = self.app.backend
        if hasattr(backend, "mget") and hasattr(backend, "get_key_for_task"):
            values = backend.mget([backend.get_key_for_task(i) for i in ids])
            ready = {}
            for task_id, raw in zip(ids, values, strict=True):
                if raw:
                    meta = backend.decode_result(raw)
                    if meta.get("status") in _READY:
                        ready[task_id] = (meta["status"], meta.get("result"))
            return ready
        ready = {}
        for task_id in ids:
            result = self.app.AsyncResult(task_id)
            if result.ready():
                ready[task_id] = (result.state, result.result)
        return ready

    def _answer(self, status: str, value: Any, batch: bool) -> Any:
        if status != "SUCCESS" or not isinstance(value, dict):
            raise ExecutorError(
                f"The celery executor's task ended with {status}: {value}; see the worker's log."
            )
        if "refused" in value:
            raise ExecutorError(
                f"The celery executor's worker refused the call: {value['refused']}"
            )
        results = self.decode(base64.b64decode(value["answer"]))
        if not batch:
            if len(results) != 1:
                raise ExecutorError(f"The celery worker answered {len(results)} results for 1.")
            ok, item, _ = results[0]
            if not ok:
                raise item
            return item
        return [item if ok else ItemFailed(item, trace) for ok, item, trace in results]

    def consumers(self, queue: str | None = None) -> int:
        """Workers consuming ``queue`` (default: this executor's queue)."""
        return consumers(self.app, queue or self.queue)

    def _revoke(self, task_ids: list[str]) -> None:
        if task_ids:
            with contextlib.suppress(Exception):
                self.app.control.revoke(task_ids)

    def _shutdown(self) -> None:
        self._inbox.put(None)
        self._thread.join()
        self.app.close()

    def __repr__(self) -> str:
        return f"<CeleryExecutor broker={redact(self.broker)!r} queue={self.queue!r}>"


@dataclass(frozen=True, slots=True)
class _Message:
    """A call on its way to the sending thread."""

    payload: str
    future: Future[Any]
    batch: bool
    placement: Placement


@dataclass(frozen=True, slots=True)
class _Sent:
    """A call sent, waiting for its answer."""

    result: Any
    future: Future[Any]
    batch: bool
    queue: str
    placement: Placement


def _time_limit_exceeded(status: str, value: Any) -> bool:
    """Whether Celery's hard time limit killed the task (the exception, or its JSON form)."""
    kind = value.get("exc_type") if isinstance(value, dict) else type(value).__name__
    return status == "FAILURE" and kind == "TimeLimitExceeded"


def _no_subscription(*args: Any, **kwargs: Any) -> None:
    return None


def _closed() -> ExecutorError:
    return ExecutorError("The celery executor was closed before this call finished.")


def _forget(result: Any) -> None:
    # rpc:// cannot forget; its results go with the reply queue anyway.
    with contextlib.suppress(Exception):
        result.forget()


__all__ = [
    "DEFAULT_QUEUE",
    "DROPPED",
    "TASK",
    "CeleryExecutor",
    "check_broker",
    "create_app",
    "driver_alive",
    "redact",
    "run_wire",
]
