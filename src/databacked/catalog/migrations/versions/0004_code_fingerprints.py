"""Fingerprints of spec transforms, with the source files that decide each.

Revision ID: 0004_code_fingerprints
Revises: 0003_sha256
Create Date: 2026-11-30

A frozen copy of ``schema.code_fingerprints`` at this revision. While a transform's source
files keep their stamps, a run knows its fingerprint without importing it (and its packages).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004_code_fingerprints"
down_revision = "0003_sha256"
branch_labels = None
depends_on = None

_Key = sa.String(64)
_Name = sa.String(255)
_LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    """Create the code_fingerprints table."""
    op.create_table(
        "code_fingerprints",
        sa.Column("ref", _Key, primary_key=True),
        sa.Column("fingerprint", _Name, nullable=False),
        sa.Column("sources", _LongText, nullable=False),
        sa.Column("checked", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    """Drop the code_fingerprints table."""
    op.drop_table("code_fingerprints")
