"""sha256 beside blake3: one row per file content, for publication formats (RO-Crate).

Revision ID: 0003_sha256
Revises: 0001
Create Date: 2026-11-30

A frozen copy of ``schema.content_digests`` at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_sha256"
down_revision = "0002_call_logs"
branch_labels = None
depends_on = None

_Key = sa.String(64)


def upgrade() -> None:
    """Create the content_digests table."""
    op.create_table(
        "content_digests",
        sa.Column("hash", _Key, primary_key=True),
        sa.Column("sha256", _Key, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop the content_digests table."""
    op.drop_table("content_digests")
