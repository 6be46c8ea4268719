"""Alembic environment for the catalog: runs on the connection ``Catalog.open`` passes in.

There is no alembic.ini; ``databacked.catalog._migrate`` builds the config in code and puts
the open connection (already holding the migration lock) in ``config.attributes``.
"""

from __future__ import annotations

from alembic import context

from databacked.catalog.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable from a hand-made alembic.ini
    raise RuntimeError("databacked's migrations run through Catalog.open(), not the alembic CLI")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
