"""The life of a Celery driver as workers see it: is anyone listening, is the sender alive.

Two things the broker alone does not tell: that no worker consumes the queue (the driver
would wait silently up to the task timeout), and that the driver which sent a queued call is
gone (a later worker would run it and rewrite outputs nobody records). ``WorkerWatch`` says
the first once; ``Liveness`` keeps the second answerable: an exclusive AMQP queue that lives
exactly as long as the driver's connection, or a Redis key with a short, renewed TTL.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Collection
from typing import Any

from celery import Celery

log = logging.getLogger("databacked.executors.celery")

DROPPED = "dropped unrun: the driver that sent it is gone (interrupted or finished)"
DRIVER_TTL = 30.0
"""Seconds a Redis driver key lives without renewal (renewed every third of it)."""


def driver_name(driver: str) -> str:
    """The queue (AMQP) or backend key (Redis) that exists exactly while a driver lives."""
    return f"databacked.driver.{driver}"


def driver_alive(app: Celery, driver: str) -> bool:
    """Is the driver that sent a call still there? AMQP: its exclusive queue exists (the
    broker deletes it with the driver's connection); Redis: its key has not expired."""
    try:
        if is_redis(app.conf.broker_url or ""):
            backend = app.backend
            client = getattr(backend, "client", None)
            if client is None:
                return True  # no key-value backend to ask: run it, as before
            return bool(client.exists(driver_name(driver)))
        with app.connection_for_write() as conn:
            channel = conn.channel()
            try:
                channel.queue_declare(queue=driver_name(driver), passive=True)
            except Exception as exc:  # 404: gone; 405 (exclusive to the driver): alive
                return getattr(exc, "code", None) != 404
            finally:
                with contextlib.suppress(Exception):
                    channel.close()
            return True
    except Exception:  # the broker itself is unreachable: let the call fail or run normally
        return True


class Liveness:
    """What makes ``driver_alive`` true while this driver runs, and false once it stops."""

    def __init__(self, app: Celery, driver: str) -> None:
        self.app, self.name = app, driver_name(driver)
        self.redis = is_redis(app.conf.broker_url or "")
        self.renewed = 0.0
        self.conn: Any = None
        if not self.redis:
            # An exclusive queue lives exactly as long as this connection: a killed driver's
            # goes with its TCP connection, with no clock involved.
            # heartbeat=0: nobody services heartbeats here, and a missed one would close it
            self.conn = app.connection_for_write(heartbeat=0)
            channel = self.conn.channel()
            channel.queue_declare(queue=self.name, exclusive=True, auto_delete=True)
        self.renew()

    def renew(self) -> None:
        client = getattr(self.app.backend, "client", None) if self.redis else None
        now = time.monotonic()
        if client is not None and now - self.renewed > DRIVER_TTL / 3:
            with contextlib.suppress(Exception):
                client.set(self.name, "1", ex=int(DRIVER_TTL))
                self.renewed = now

    def end(self) -> None:
        if self.redis:
            client = getattr(self.app.backend, "client", None)
            if client is not None:
                with contextlib.suppress(Exception):
                    client.delete(self.name)
        elif self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()


def consumers(app: Celery, queue: str) -> int:
    """Workers consuming ``queue``: AMQP's consumer count, or (Redis) the workers that say so."""
    if is_redis(app.conf.broker_url or ""):
        replies = app.control.inspect(timeout=1.0).active_queues() or {}
        return sum(any(q.get("name") == queue for q in queues) for queues in replies.values())
    with app.connection_for_write() as conn:
        channel = conn.channel()
        try:
            return int(channel.queue_declare(queue=queue, passive=True).consumer_count)
        finally:
            with contextlib.suppress(Exception):
                channel.close()


class WorkerWatch:
    """Says once per queue, after ``no_worker_warning`` seconds of waiting on it with no
    answer from it, when no worker consumes that queue: else the driver waits silently up to
    the task timeout (a step's ``queue=`` that no ``databacked worker --queues`` serves)."""

    def __init__(self, executor: Any, shown_broker: str) -> None:
        self.executor, self.shown = executor, shown_broker
        self.since: dict[str, float] = {}
        self.done: set[str] = set()
        self.off = executor.no_worker_warning <= 0

    def check(self, waiting: Collection[str], answered: Collection[str]) -> None:
        """``waiting``: queues with calls not answered yet; ``answered``: queues that just
        answered (a queue that ever answered has a worker: it is never warned about)."""
        if self.off:
            return
        self.done.update(answered)
        for queue in [q for q in self.since if q not in waiting or q in self.done]:
            del self.since[queue]
        now = time.monotonic()
        for queue in waiting:
            if queue in self.done:
                continue
            if now - self.since.setdefault(queue, now) < self.executor.no_worker_warning:
                continue
            self.done.add(queue)
            try:
                found = self.executor.consumers(queue)
            except Exception:  # noqa: S112 - the broker hiccuped: say nothing rather than wrong
                continue
            if found == 0:
                log.warning(
                    "No Celery worker has taken a call from queue %r on %s in %.0f s; start one "
                    "where the data is reachable: databacked worker --broker %s --queues %s",
                    queue,
                    self.shown,
                    self.executor.no_worker_warning,
                    self.shown,
                    queue,
                )


def is_redis(url: str) -> bool:
    return url.split("://", 1)[0] in {"redis", "rediss"}


__all__ = [
    "DRIVER_TTL",
    "DROPPED",
    "Liveness",
    "WorkerWatch",
    "consumers",
    "driver_alive",
    "driver_name",
    "is_redis",
]
