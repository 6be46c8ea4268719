"""``create_app``: the read-only web UI as an ASGI app, behind its security guard.

Example::

    app = create_app("sqlite:///.databacked/catalog.db")  # loopback, no token
    uvicorn.run(app, host="127.0.0.1", port=8765)
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from databacked.ui import api, lineage, pages, plate_pages
from databacked.ui.security import Guard, allowed_hosts
from databacked.ui.source import Source, open_catalog
from databacked.ui.state import UiState
from databacked.ui.templating import render

log = logging.getLogger("databacked.ui")

STATIC = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def _static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("databacked.ui") / "static"
    return {name: ((folder / name).read_bytes(), kind) for name, kind in STATIC.items()}


def build_app(state: UiState) -> FastAPI:
    """The FastAPI app (no guard) over a prepared state."""
    from databacked import __version__

    app = FastAPI(
        title="databacked UI",
        version=__version__,
        description="Read-only views of a databacked catalog: runs, calls, artifacts, lineage.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.ui = state
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(plate_pages.router)
    files = _static_files()

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in files:
            raise HTTPException(404, "No such file.")
        data, kind = files[name]
        return Response(data, media_type=kind, headers={"cache-control": "public, max-age=3600"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        data, kind = files["favicon.svg"]
        return Response(data, media_type=kind, headers={"cache-control": "public, max-age=86400"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return render(request, "error.html", status_code=exc.status_code, error=exc.detail,
                      status=exc.status_code)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "query") or "request"
        text = f"Invalid {where}: {first.get('msg', 'bad value')}."
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": text}, status_code=400)
        return render(request, "error.html", status_code=400, error=text, status=400)

    return app


def create_app(
    catalog: str,
    *,
    stores: list[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    host: str = "127.0.0.1",
    token: str | None = None,
    extra_hosts: list[str] | None = None,
    graphviz: bool | None = None,
) -> Any:
    """The guarded ASGI app over the catalog at ``catalog`` (opened read-only).

    ``stores``: store URLs whose bytes may be served (None: those the catalog records).
    ``token``: required for every request when given (see ``security``).
    """
    source = Source(open_catalog(catalog), stores, storage_options)
    state = UiState(source=source, graphviz=lineage.has_dot() if graphviz is None else graphviz)
    app = build_app(state)
    return Guard(app, hosts=allowed_hosts(host, extra_hosts or ()), token=token)


__all__ = ["build_app", "create_app"]
