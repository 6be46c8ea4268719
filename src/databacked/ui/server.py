"""Serving the UI with uvicorn in a background thread: for notebooks, tests and benchmarks.

Example::

    with background(create_app(url)) as base:  # "http://127.0.0.1:PORT"
        webbrowser.open(base)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from databacked.errors import DatabackedError


@contextmanager
def background(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0
) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields the base URL (port 0: a free one)."""
    import uvicorn

    if port == 0:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", server_header=False)
    )
    thread = threading.Thread(target=server.run, name="databacked-ui", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise DatabackedError(f"The UI server did not start on {host}:{port}.")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


__all__ = ["background"]
