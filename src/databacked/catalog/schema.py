"""The catalog's tables, as SQLAlchemy Core, portable across SQLite, PostgreSQL and MariaDB.

Portability rules: hashes and keys are ``String(64)`` (MariaDB indexes need lengths); free text
is ``Text`` (MEDIUMTEXT on MariaDB, where TEXT stops at 64 KiB); times are epoch seconds as
``Double`` (MariaDB's FLOAT is single precision: ±2 minutes in 2025); sizes are ``BigInteger``.
Store paths can be long, so (store, path) is indexed through ``loc``, a fixed-length hash of
the pair, rather than by the two strings.

This module describes the *current* schema. Alembic revisions in ``migrations/versions`` are
frozen copies; ``tests/catalog`` checks that they agree.
"""

from __future__ import annotations

import blake3
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

HEAD_REVISION = "0004_code_fingerprints"
"""Alembic head revision id; ``Catalog.open`` compares it without importing Alembic."""

KNOWN_REVISIONS = ("0001", "0002_call_logs", "0003_sha256", "0004_code_fingerprints")
"""Every revision this package ships; anything else in a catalog comes from a newer databacked."""

metadata = sa.MetaData()

_Key = sa.String(64)
_Name = sa.String(255)
_Store = sa.String(512)
_Time = sa.Double()
_LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
_AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only


def location(store: str, path: str) -> str:
    """Fixed-length id of a (store, path) pair, for primary keys and joins."""
    return blake3.blake3(f"{store}\0{path}".encode()).hexdigest()


runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("pipeline", _Name, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started", _Time, nullable=False),
    sa.Column("finished", _Time),
    sa.Column("host", _Name),
    sa.Column("user", _Name),
    sa.Column("pid", sa.Integer),
    sa.Column("git_commit", _Key),
    sa.Column("git_dirty", sa.Boolean),
    sa.Column("python", sa.String(64)),
    sa.Column("packages", sa.JSON),
    sa.Column("config", sa.JSON),
    sa.Column("summary", sa.JSON),
    sa.Index("ix_runs_started", "started"),
)

calls = sa.Table(
    "calls",
    metadata,
    sa.Column("key", _Key, primary_key=True),
    sa.Column("step", _Name, nullable=False),
    sa.Column("fingerprint", _Name),
    sa.Column("run_id", sa.String(32)),
    sa.Column("params_hash", _Key),
    sa.Column("params", sa.JSON),
    sa.Column("started", _Time),
    sa.Column("finished", _Time),
    sa.Column("seconds", _Time),
    sa.Column("host", _Name),
    sa.Column("pid", sa.Integer),
    sa.Column("stdout", _LongText),
    sa.Column("stderr", _LongText),
    sa.Column("created", _Time, nullable=False),
    sa.Column("log", _LongText),  # 0002_call_logs: tail of stdout, stderr and logging, in order
    sa.Index("ix_calls_step", "step"),
    sa.Index("ix_calls_run", "run_id"),
    sa.Index("ix_calls_created", "created"),
)

call_attempts = sa.Table(
    "call_attempts",
    metadata,
    sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
    sa.Column("key", _Key, nullable=False),
    sa.Column("step", _Name, nullable=False),
    sa.Column("run_id", sa.String(32)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_type", _Name),
    sa.Column("error_message", _LongText),
    sa.Column("traceback", _LongText),
    sa.Column("stdout", _LongText),
    sa.Column("stderr", _LongText),
    sa.Column("started", _Time),
    sa.Column("finished", _Time),
    sa.Column("host", _Name),
    sa.Column("log", _LongText),  # 0002_call_logs
    sa.Index("ix_attempts_key", "key"),
    sa.Index("ix_attempts_run", "run_id"),
)

# One row per (location, content): the same path holds different bytes over time, and the
# row with the latest ``created`` is the current one. Re-recording identical bytes at a path
# refreshes that row (stamp, producer, created) instead of adding one.
artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("loc", _Key, primary_key=True),
    sa.Column("hash", _Key, primary_key=True),
    sa.Column("store", _Store, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("format", sa.String(64)),
    sa.Column("stamp", _Name),
    sa.Column("metadata", sa.JSON),
    sa.Column("key", _Key),
    sa.Column("created", _Time, nullable=False),
    sa.Index("ix_art_loc_created", "loc", "created"),
    sa.Index("ix_art_store", "store"),
    sa.Index("ix_art_hash", "hash"),
    sa.Index("ix_art_key", "key"),
)

call_outputs = sa.Table(
    "call_outputs",
    metadata,
    sa.Column("key", _Key, primary_key=True),
    sa.Column("name", _Name, primary_key=True),
    sa.Column("loc", _Key, nullable=False),
    sa.Column("store", _Store, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("hash", _Key, nullable=False),
    sa.Index("ix_out_loc_hash", "loc", "hash"),
)

call_inputs = sa.Table(
    "call_inputs",
    metadata,
    sa.Column("key", _Key, primary_key=True),
    sa.Column("name", _Name, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("loc", _Key),
    sa.Column("store", _Store),
    sa.Column("path", sa.Text),
    sa.Column("hash", _Key, nullable=False),
    sa.Index("ix_in_hash", "hash"),
)

file_stats = sa.Table(
    "file_stats",
    metadata,
    sa.Column("loc", _Key, primary_key=True),
    sa.Column("store", _Store, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("stamp", _Name, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("hash", _Key, nullable=False),
    sa.Column("checked", _Time, nullable=False),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("key", _Key, primary_key=True),
    sa.Column("owner", _Name, nullable=False),
    sa.Column("host", _Name),
    sa.Column("pid", sa.Integer),
    sa.Column("acquired", _Time, nullable=False),
    sa.Column("heartbeat", _Time, nullable=False),
    sa.Column("expires", _Time, nullable=False),
    sa.Index("ix_leases_owner", "owner"),
)

# sha256 of file contents, by blake3 content hash: RO-Crate and other publication formats
# want sha256; it is computed once per content (at the first export), never on the write path.
content_digests = sa.Table(
    "content_digests",
    metadata,
    sa.Column("hash", _Key, primary_key=True),
    sa.Column("sha256", _Key, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
)

# A spec transform's fingerprint and the source files (with their stamps) that decide it:
# while they are unchanged, a run need not import the transform and its packages to key it.
code_fingerprints = sa.Table(
    "code_fingerprints",
    metadata,
    sa.Column("ref", _Key, primary_key=True),
    sa.Column("fingerprint", _Name, nullable=False),
    sa.Column("sources", _LongText, nullable=False),
    sa.Column("checked", _Time, nullable=False),
)

__all__ = [
    "HEAD_REVISION",
    "KNOWN_REVISIONS",
    "artifacts",
    "call_attempts",
    "call_inputs",
    "call_outputs",
    "calls",
    "code_fingerprints",
    "content_digests",
    "file_stats",
    "leases",
    "location",
    "metadata",
    "runs",
]
