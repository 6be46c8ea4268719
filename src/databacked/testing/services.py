"""Real services for tests: PostgreSQL and MariaDB databases, an S3 server, a broker.

Each service URL comes from a ``DATABACKED_TEST_*`` variable (``.ci/run`` sets them). Locally a
missing service skips its tests with a reason naming the variable; with ``CI=true`` it fails.
S3 is moto's real HTTP server on loopback, never patched calls.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from databacked.secrets import redact_text

POSTGRES_VAR = "DATABACKED_TEST_POSTGRES_URL"
MYSQL_VAR = "DATABACKED_TEST_MYSQL_URL"
AMQP_VAR = "DATABACKED_TEST_AMQP_URL"
REDIS_VAR = "DATABACKED_TEST_REDIS_URL"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip locally; fail under CI=true, where every service must be there."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str, extra: str) -> Any:
    """The imported ``module`` of an optional extra; skipped locally when it is missing, a
    failure under CI=true (what ``pytest.importorskip`` would silently skip)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        unavailable(f"{module} is not installed ({exc}); pip install 'databacked[{extra}]'")
        raise  # unreachable: unavailable() skips or fails


def service_url(var: str) -> str:
    url = os.environ.get(var)
    if not url:
        unavailable(f"set {var} to run this test against a real service")
    assert url is not None
    host, port = _host_port(url)
    if not port_open(host, port):
        unavailable(f"{var}={_redacted(url)} is set but nothing answers on {host}:{port}")
    return url


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    defaults = {"postgresql": 5432, "mysql": 3306, "amqp": 5672, "redis": 6379}
    scheme = parts.scheme.split("+")[0]
    return parts.hostname or "127.0.0.1", parts.port or defaults.get(scheme, 0)


def _redacted(url: str) -> str:
    return redact_text(url)


@contextmanager
def scratch_database(base_url: str) -> Iterator[str]:
    """Create a fresh database on the server of ``base_url``; yield its URL; drop it after."""
    import sqlalchemy as sa

    name = f"dbk_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        admin.dispose()
        unavailable(f"cannot create a scratch database on {_redacted(base_url)}: {exc}")
    parts = urlsplit(base_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        yield url
    finally:
        with admin.connect() as conn:
            if admin.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """moto's S3 HTTP server on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def die_with_parent() -> None:
    """``preexec_fn`` of a service a test starts (a dask scheduler, a worker): the child gets
    SIGTERM when the test process dies, so an interrupted run leaves nothing running."""
    import ctypes
    import ctypes.util
    import signal

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
