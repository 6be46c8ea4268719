"""The ``databacked`` command line (typer + rich); ``main`` is the console-script entry."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``databacked`` console script."""
    import sys

    from databacked.cli.app import for_argv

    for_argv(sys.argv[1:])(prog_name="databacked")


__all__ = ["main"]
