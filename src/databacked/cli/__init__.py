"""The ``databacked`` command line (typer + rich); ``main`` is the console-script entry."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``databacked`` console script."""
    from databacked.cli.app import app

    app(prog_name="databacked")


__all__ = ["main"]
