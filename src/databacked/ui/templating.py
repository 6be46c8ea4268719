"""Jinja2 for the pages: every template autoescaped, a few filters for times and sizes.

Starlette's ``Jinja2Templates`` escapes only ``.html``-named templates; this environment
escapes all of them, so a file name with ``<script>`` in it is text wherever it shows.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

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


def when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def human_size(size: float | None) -> str:
    if size is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


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
