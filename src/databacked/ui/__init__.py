"""The read-only web UI (``databacked ui``): runs, calls, artifacts, lineage and plates.

FastAPI with Jinja2 pages and a vendored htmx; it reads the catalog (opened read-only) and the
stores, and writes nothing. ``create_app`` builds it; the CLI serves it with uvicorn.
"""

from __future__ import annotations

from databacked.ui.app import build_app, create_app

__all__ = ["build_app", "create_app"]
