"""The ``Catalog``: runs, calls (the cache), artifacts, lineage, the stat cache and leases.

One object per database URL. Every method runs one transaction on its own connection from
the engine's pool, so a Catalog may be shared by the driver's threads. Writes on SQLite begin
with ``BEGIN IMMEDIATE`` (they queue on the busy timeout instead of failing); on
PostgreSQL and MariaDB a transaction chosen as a deadlock victim is run again.

Example::

    catalog = Catalog.open("sqlite:///.databacked/catalog.db")
    hits = catalog.lookup(keys)          # key -> CallRow with outputs, for keys computed before
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import sqlalchemy as sa

from databacked.catalog import calls, digests, leases, queries
from databacked.catalog.connect import IMMEDIATE, create_engine, ensure_schema, redact
from databacked.catalog.dml import retrying
from databacked.catalog.records import (
    ArtifactRow,
    CallRecord,
    CallRow,
    InputRef,
    LeaseRow,
    LineageRow,
    RunRow,
)
from databacked.crashpoints import crashpoint
from databacked.errors import CatalogError
from databacked.secrets import redact as redact_secrets

DEFAULT_URL = "sqlite:///.databacked/catalog.db"
"""The catalog used when none is configured: a SQLite file beside the project."""

T = TypeVar("T")


class Catalog:
    """The SQL catalog of one database; build it with ``Catalog.open(url)``."""

    def __init__(self, engine: sa.Engine, url: str) -> None:
        """Wrap an engine whose schema is already at head (use ``open`` instead)."""
        self._engine = engine
        self.url = url
        self.url_redacted = redact(url)
        """The URL with its password hidden: safe for logs and messages."""

    # -- life cycle ------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str | os.PathLike[str] = DEFAULT_URL) -> Catalog:
        """Connect to ``url``, creating or migrating the schema when needed.

        A plain file path is taken as a SQLite database.
        """
        url = str(url)
        if "://" not in url:
            url = f"sqlite:///{os.path.abspath(url)}"
        engine = create_engine(url)
        try:
            ensure_schema(engine, url)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, url)

    @classmethod
    def coerce(cls, obj: Catalog | str | os.PathLike[str] | None) -> Catalog:
        """An existing Catalog as is; a URL or path opened; None: the default catalog."""
        if isinstance(obj, Catalog):
            return obj
        return cls.open(DEFAULT_URL if obj is None else obj)

    @property
    def dialect(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB too)."""
        return self._engine.dialect.name

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, for tests and tools that need raw access."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self.url_redacted!r})"

    def _run(self, action: str, fn: Callable[[sa.Connection], T], *, write: bool = False) -> T:
        """Run ``fn`` in one transaction; database errors become CatalogError."""

        def attempt() -> T:
            with self._engine.connect() as conn:
                if write and self.dialect == "sqlite":
                    conn.execution_options(**{IMMEDIATE: True})  # in place
                elif write:
                    # Unique keys, not gap locks, settle races between drivers.
                    conn.execution_options(isolation_level="READ COMMITTED")
                with conn.begin():
                    return fn(conn)

        try:
            return retrying(attempt)
        except sa.exc.SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            raise CatalogError(
                f"The catalog {self.url_redacted} failed to {action}: {detail}; check that the "
                "database is reachable and not full, then try again."
            ) from exc

    # -- runs ------------------------------------------------------------------------------

    def start_run(self, info: Mapping[str, Any]) -> str:
        """Record a run as started; returns its id. ``info``: pipeline, host, user, git, ..."""
        shown = redact_secrets(dict(info))  # the run's configuration row never holds a secret
        return self._run("record a run", lambda c: queries.start_run(c, shown), write=True)

    def finish_run(self, run_id: str, status: str, summary: Mapping[str, Any]) -> None:
        """Record a run's end: status (``ok``/``failed``/...) and a JSON summary."""
        self._run(
            "finish a run", lambda c: queries.finish_run(c, run_id, status, summary), write=True
        )

    def runs(self, limit: int = 20) -> list[RunRow]:
        """The latest ``limit`` runs, newest first."""
        return self._run("list runs", lambda c: queries.recent_runs(c, limit))

    # -- calls and cache -------------------------------------------------------------------

    def lookup(self, keys: Iterable[str], *, brief: bool = False) -> dict[str, CallRow]:
        """Completed calls by key, each with its output artifacts (batched IN queries);
        ``brief``: key, step and outputs only (enough to decide a cache hit)."""
        keys = list(keys)
        return self._run("look up calls", lambda c: calls.lookup(c, keys, brief=brief))

    def record_calls(self, records: Sequence[CallRecord]) -> None:
        """Commit a batch of calls in one transaction; completed ones become cache entries.

        Calls whose status is not ``ok`` go to the attempt history as ``record_failures``.
        """
        done = [r for r in records if r.status == "ok"]
        other = [r for r in records if r.status != "ok"]

        def write(conn: sa.Connection) -> None:
            calls.record(conn, done)
            calls.record_attempts(conn, other)
            crashpoint("catalog.commit.before")

        self._run("record calls", write, write=True)
        crashpoint("catalog.commit.after")

    def record_failures(self, records: Sequence[CallRecord]) -> None:
        """Append failed or skipped attempts to the history; never used as cache."""
        self._run(
            "record failed calls", lambda c: calls.record_attempts(c, list(records)), write=True
        )

    def last_failures(self, keys: Iterable[str]) -> dict[str, CallRow]:
        """The latest failed attempt of each of ``keys`` that failed before."""
        keys = list(keys)
        return self._run("look up failed calls", lambda c: calls.last_failures(c, keys))

    def known_keys(self, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` with a completed call or a recorded attempt (gc keeps their logs)."""
        keys = list(keys)
        return self._run("look up call keys", lambda c: calls.known_keys(c, keys))

    def record_artifacts(self, store_url: str, records: Sequence[Any]) -> None:
        """Record files written outside any call (``db.save``): ArtifactRecord-likes or dicts."""
        records = list(records)
        self._run(
            "record artifacts",
            lambda c: calls.record_artifacts(c, store_url, records),
            write=True,
        )

    def inputs_of(self, keys: Iterable[str]) -> dict[str, dict[str, list[InputRef]]]:
        """Completed calls' inputs: key -> argument name -> refs (why a call re-runs)."""
        keys = list(keys)
        return self._run("look up call inputs", lambda c: queries.inputs_of(c, keys))

    def calls_of_run(self, run_id: str) -> list[CallRow]:
        """Calls completed by a run and its failed/skipped attempts, by start time."""
        return self._run("list a run's calls", lambda c: calls.of_run(c, run_id))

    def find_calls(
        self,
        *,
        key: str | None = None,
        step: str | None = None,
        failed: bool = False,
        limit: int = 20,
    ) -> list[CallRow]:
        """Completed calls and failed attempts by key prefix and/or step, newest first."""
        return self._run(
            "find calls",
            lambda c: calls.find(c, key=key, step=step, failed=failed, limit=limit),
        )

    def forget(
        self,
        *,
        step: str | None = None,
        key: str | None = None,
        older_than: float | datetime | timedelta | None = None,
    ) -> int:
        """Drop completed calls so they compute again; run history stays. Returns the count.

        Filters combine; none at all forgets every call. ``key`` may be a prefix.
        ``older_than``: a datetime or epoch seconds (recorded before it) or a timedelta
        (recorded longer ago than it).
        """
        before: float | None
        if isinstance(older_than, timedelta):
            before = time.time() - older_than.total_seconds()
        elif isinstance(older_than, datetime):
            before = older_than.timestamp()
        else:
            before = older_than
        return self._run(
            "forget calls",
            lambda c: calls.forget(c, step=step, key=key, before=before),
            write=True,
        )

    def sha256_get(self, hashes: Iterable[str]) -> dict[str, tuple[str, int]]:
        """blake3 content hash -> (sha256, size), for contents whose sha256 is known."""
        hashes = list(hashes)
        return self._run("read sha256 digests", lambda c: digests.sha256_get(c, hashes))

    def sha256_put(self, rows: Iterable[tuple[str, str, int]]) -> None:
        """Remember (blake3 hash, sha256, size) so no content is read twice for its sha256."""
        rows = list(rows)
        self._run("write sha256 digests", lambda c: digests.sha256_put(c, rows), write=True)

    # -- stat cache ------------------------------------------------------------------------

    def stat_cache_get(self, store_url: str, paths: Iterable[str]) -> dict[str, tuple[str, str]]:
        """path -> (stamp, hash) for input files hashed before."""
        paths = list(paths)
        return self._run("read the stat cache", lambda c: queries.stat_get(c, store_url, paths))

    def stat_cache_put(self, store_url: str, rows: Iterable[tuple[str, str, int, str]]) -> None:
        """Remember (path, stamp, size, hash) of input files."""
        rows = list(rows)
        self._run(
            "write the stat cache", lambda c: queries.stat_put(c, store_url, rows), write=True
        )

    def code_fingerprint_get(self, ref: str) -> tuple[str, list[tuple[str, str]]] | None:
        """(fingerprint, [(source file, stamp)]) kept for a transform (``ref``), if any."""
        return self._run("read a code fingerprint", lambda c: queries.code_get(c, ref))

    def code_fingerprint_put(
        self, ref: str, fingerprint: str, sources: Sequence[tuple[str, str]]
    ) -> None:
        """Keep a transform's fingerprint with the stamps of the files that decide it."""
        self._run(
            "write a code fingerprint",
            lambda c: queries.code_put(c, ref, fingerprint, sources),
            write=True,
        )

    # -- leases ----------------------------------------------------------------------------

    def acquire(
        self,
        keys: Iterable[str],
        owner: str,
        ttl: float,
        *,
        host: str | None = None,
        pid: int | None = None,
    ) -> set[str]:
        """Lease the free or expired ``keys`` to ``owner`` for ``ttl`` seconds.

        Returns every key of ``keys`` that ``owner`` now holds (its own live leases are
        extended); a key leased by another live owner is left out.
        """
        ordered = sorted(set(keys))
        host = host if host is not None else socket.gethostname()
        pid = pid if pid is not None else os.getpid()
        return self._run(
            "take leases",
            lambda c: leases.acquire(c, ordered, owner, ttl, host=host, pid=pid),
            write=True,
        )

    def renew(self, owner: str, ttl: float) -> None:
        """Extend all of ``owner``'s leases by ``ttl`` seconds from now (heartbeat)."""
        self._run("renew leases", lambda c: leases.renew(c, owner, ttl), write=True)

    def release(self, keys: Iterable[str] | None, owner: str) -> None:
        """Give back ``owner``'s leases on ``keys`` (None: all of them)."""
        ordered = None if keys is None else sorted(set(keys))
        self._run("release leases", lambda c: leases.release(c, ordered, owner), write=True)

    def live_leases(self) -> list[LeaseRow]:
        """Every unexpired lease, of any driver: what is being computed now (gc spares it)."""
        return self._run("read leases", leases.all_live)

    def leases_of_others(
        self, keys: Iterable[str], owner: str | None = None
    ) -> dict[str, LeaseRow]:
        """Unexpired leases on ``keys`` held by anyone but ``owner``: what runs elsewhere."""
        ordered = sorted(set(keys))
        return self._run("read leases", lambda c: leases.live_leases(c, ordered, owner))

    # -- queries for the CLI ---------------------------------------------------------------

    def artifact_by_path(self, store_url: str, path: str) -> ArtifactRow | None:
        """The latest recorded version of ``path`` in ``store_url``, or None."""
        return self._run(
            "look up an artifact", lambda c: queries.artifact_by_path(c, store_url, path)
        )

    def artifacts(self, store: str | None = None, prefix: str | None = None) -> list[ArtifactRow]:
        """Current artifacts (latest version per path), optionally of one store / path prefix."""
        return self._run("list artifacts", lambda c: queries.current_artifacts(c, store, prefix))

    def lineage(self, store_url: str, path: str) -> list[LineageRow]:
        """How a file was made, breadth first (see ``LineageRow``); [] for an unknown file."""
        return self._run("trace lineage", lambda c: queries.lineage(c, store_url, path))

    def referenced_paths(self, store_url: str) -> set[str]:
        """Paths in ``store_url`` that the catalog still refers to (everything else is gc's)."""
        return self._run("list referenced paths", lambda c: queries.referenced_paths(c, store_url))


__all__ = ["DEFAULT_URL", "Catalog"]
