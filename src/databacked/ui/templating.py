"""Jinja2 for the pages: every template autoescaped, a few filters for times and sizes.

Starlette's ``Jinja2Templates`` escapes only ``.html``-named templates; this environment
escapes all of them, so a file name with ``<script>`` in it is text wherever it shows.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from databacked.units import duration, human_size, when

STATUS_CLASS = {
    "ok": "ok",
    "ran": "ok",
    "cached": "cached",
    "failed": "bad",
    "error": "bad",
    "skipped": "muted",
    "running": "live",
    "waiting": "muted",
}


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("databacked.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, duration=duration, size=human_size, pretty=pretty)
    env.globals.update(status_class=lambda s: STATUS_CLASS.get(str(s), "muted"))
    return env


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The template ``template`` as an HTML response."""
    html = environment().get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code)


__all__ = ["duration", "environment", "human_size", "render", "when"]
