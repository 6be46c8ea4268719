"""Per-call logs: a tail of each call's stdout, stderr and ``logging`` records, in order.

Revision ID: 0002_call_logs
Revises: 0001
Create Date: 2026-11-30

The whole log of a call lives in the store (``.databacked/logs/<key>.log``); the catalog
keeps its tail for ``databacked logs``, ``show`` and the UI.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002_call_logs"
down_revision = "0001"
branch_labels = None
depends_on = None

_LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    """Add the ``log`` column to calls and to the attempt history."""
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("log", _LongText))
    with op.batch_alter_table("call_attempts") as batch:
        batch.add_column(sa.Column("log", _LongText))


def downgrade() -> None:
    with op.batch_alter_table("call_attempts") as batch:
        batch.drop_column("log")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("log")
