"""``databacked ui``: serve the read-only web UI over the catalog and the store.

Loopback binds need no login. Any other bind refuses to start without a token: the one given
with ``--token``, or a generated one, printed once as a login URL.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from databacked.cli.common import CatalogOption, console, settings
from databacked.errors import ConfigError

log = logging.getLogger("databacked.cli")


def register(app: typer.Typer) -> None:
    """Add the ``ui`` command to the CLI application."""
    app.command("ui")(ui)


def ui(
    *,
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            help="Login token (default: generated when --host is not loopback).",
            envvar="DATABACKED_UI_TOKEN",
        ),
    ] = None,
    catalog: CatalogOption = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Serve bytes only from this store (default: the stores the catalog records).",
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(help="Extra Host name to accept (a reverse proxy's name); repeatable."),
    ] = None,
) -> None:
    """Browse runs, calls, artifacts, lineage and plates in a web browser (read-only)."""
    try:
        import uvicorn

        from databacked.ui import create_app
        from databacked.ui.security import is_loopback, new_token
    except ImportError as exc:
        raise ConfigError(
            f"The web UI needs its extra ({exc.name} is missing): pip install 'databacked[ui]'."
        ) from exc
    config = settings(catalog=catalog, store=store)
    loopback = is_loopback(host)
    if not loopback and token is None:
        token = new_token()
    if token is not None and len(token) < 16:
        raise ConfigError("The --token is too short: use at least 16 characters, or omit it.")
    app = create_app(
        config.catalog,
        stores=[config.store] if store else None,
        storage_options=config.storage_options or None,
        host=host,
        token=token,
        extra_hosts=allow_host or [],
    )
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):  # noqa: S104 - naming the wildcard for the message
        import socket

        shown = socket.gethostname()
    url = f"http://{shown}:{port}/"
    if token is not None:
        url += f"?token={token}"
    console.print(f"databacked UI (read-only) at {url}", highlight=False, soft_wrap=True)
    if token is not None:
        console.print("Open the URL once to log in; it sets a cookie and drops the token.")
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


__all__ = ["register", "ui"]
