"""The initial catalog: runs, calls, attempts, artifacts, lineage edges, stat cache, leases.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

A frozen copy of ``schema.py`` at this revision: later schema changes get their own revision
rather than editing this one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Key = sa.String(64)
_Name = sa.String(255)
_Store = sa.String(512)
_Time = sa.Double()
_LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
_AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create every table of revision 0001."""
    op.create_table(
        "runs",
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
    )
    op.create_index("ix_runs_started", "runs", ["started"])

    op.create_table(
        "calls",
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
    )
    op.create_index("ix_calls_step", "calls", ["step"])
    op.create_index("ix_calls_run", "calls", ["run_id"])
    op.create_index("ix_calls_created", "calls", ["created"])

    op.create_table(
        "call_attempts",
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
    )
    op.create_index("ix_attempts_key", "call_attempts", ["key"])
    op.create_index("ix_attempts_run", "call_attempts", ["run_id"])

    op.create_table(
        "artifacts",
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
    )
    op.create_index("ix_art_loc_created", "artifacts", ["loc", "created"])
    op.create_index("ix_art_store", "artifacts", ["store"])
    op.create_index("ix_art_hash", "artifacts", ["hash"])
    op.create_index("ix_art_key", "artifacts", ["key"])

    op.create_table(
        "call_outputs",
        sa.Column("key", _Key, primary_key=True),
        sa.Column("name", _Name, primary_key=True),
        sa.Column("loc", _Key, nullable=False),
        sa.Column("store", _Store, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("hash", _Key, nullable=False),
    )
    op.create_index("ix_out_loc_hash", "call_outputs", ["loc", "hash"])

    op.create_table(
        "call_inputs",
        sa.Column("key", _Key, primary_key=True),
        sa.Column("name", _Name, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("loc", _Key),
        sa.Column("store", _Store),
        sa.Column("path", sa.Text),
        sa.Column("hash", _Key, nullable=False),
    )
    op.create_index("ix_in_hash", "call_inputs", ["hash"])

    op.create_table(
        "file_stats",
        sa.Column("loc", _Key, primary_key=True),
        sa.Column("store", _Store, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("stamp", _Name, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("hash", _Key, nullable=False),
        sa.Column("checked", _Time, nullable=False),
    )

    op.create_table(
        "leases",
        sa.Column("key", _Key, primary_key=True),
        sa.Column("owner", _Name, nullable=False),
        sa.Column("host", _Name),
        sa.Column("pid", sa.Integer),
        sa.Column("acquired", _Time, nullable=False),
        sa.Column("heartbeat", _Time, nullable=False),
        sa.Column("expires", _Time, nullable=False),
    )
    op.create_index("ix_leases_owner", "leases", ["owner"])


def downgrade() -> None:
    """Drop every table of revision 0001."""
    for table in (
        "leases",
        "file_stats",
        "call_inputs",
        "call_outputs",
        "artifacts",
        "call_attempts",
        "calls",
        "runs",
    ):
        op.drop_table(table)
