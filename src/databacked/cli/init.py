"""``databacked init``: write a commented databacked.toml with the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from databacked.cli.common import console
from databacked.errors import ConfigError

TEMPLATE = """\
# databacked configuration. Values here are overridden by DATABACKED_* environment
# variables (e.g. DATABACKED_STORE) and by command-line flags (e.g. --store).
# Secrets (S3 keys, database passwords) belong in the environment, never in this file.

# Where bytes live: a folder, or a URL such as "s3://bucket/prefix".
store = "./data"

# The catalog of runs, calls and lineage: an SQLAlchemy URL. Use PostgreSQL or MariaDB
# when several people or machines share one, e.g. "postgresql+psycopg://host/db".
catalog = "sqlite:///.databacked/catalog.db"

# Where calls run: inline, threads, processes, dask (or "dask://host:8786"), celery.
executor = "processes"

# Parallel workers; leave unset for one per core.
# workers = 8

# Durability of writes: "batch" (one filesystem sync per commit batch), "fsync" (one per
# file) or "none" (scratch work).
durability = "batch"

# Re-hash every cached output before trusting it (slower, paranoid).
verify = false

# Seconds before the lease of a driver that died expires and its calls may run elsewhere.
lease_ttl = 600.0

# Options passed to the store's filesystem (fsspec), e.g. an S3-compatible endpoint.
# [storage_options]
# endpoint_url = "http://127.0.0.1:9000"

# [dask]
# cluster_class = "dask_jobqueue.SLURMCluster"
# cluster_kwargs = { cores = 8, memory = "32GB" }
# scale = 10

# [celery]
# broker = "amqp://guest@127.0.0.1//"
# queue = "databacked"
"""


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    folder: Annotated[
        Path, typer.Argument(help="Project folder to write databacked.toml into.")
    ] = Path(),
) -> None:
    """Write a commented databacked.toml with the defaults (never overwrites one)."""
    target = folder / "databacked.toml"
    if target.exists():
        raise ConfigError(
            f"{target} already exists; edit it, or remove it first to start from the defaults."
        )
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(TEMPLATE, encoding="utf-8")
    console.print(f"Wrote {target}: store ./data, SQLite catalog, processes executor.")
