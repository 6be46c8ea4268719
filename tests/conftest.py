"""Shared fixtures: real services (DESIGN section 10), scratch stores and step modules."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from databacked.testing import services

if TYPE_CHECKING:
    from databacked.store import Store


@pytest.fixture(autouse=True)
def _restore_sys_path() -> Iterator[None]:
    """Loading a user's FILE.py puts its folder on sys.path (as `python FILE.py` would); in
    one pytest process that must not leak into later tests or the subprocesses they start."""
    saved = list(sys.path)
    yield
    sys.path[:] = saved


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database, dropped after the session."""
    with services.scratch_database(services.service_url(services.POSTGRES_VAR)) as url:
        yield url


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """URL of a fresh MariaDB/MySQL database, dropped after the session."""
    with services.scratch_database(services.service_url(services.MYSQL_VAR)) as url:
        yield url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return services.service_url(services.AMQP_VAR)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return services.service_url(services.REDIS_VAR)


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A catalog URL on each supported database; the server ones are fresh per session."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback, with credentials and endpoint in the environment."""
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    with services.moto_s3_server() as endpoint:
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        )
        try:
            yield endpoint
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


_S3_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the moto server; returns ``s3://name``."""
    import uuid

    import boto3

    name = f"dbk-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture
def slow_copy_spec(tmp_path: Path) -> Store:
    """A spec ``tmp_path/pipelines/p.yml`` copying three texts with ``datum_timeout: 1s``,
    whose datum ``slow`` sleeps 30 s; its store (``tmp_path/data``) holds the texts."""
    import textwrap

    from databacked.store import Store

    store = Store(tmp_path / "data")
    for name in ("fast1", "slow", "fast2"):
        store.put_bytes(f"texts/{name}.txt", name.encode())
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yml").write_text(
        textwrap.dedent(
            """
            pipeline: copy
            datum_timeout: 1s
            input: {repo: texts, glob: "/(*).txt"}
            transform:
              cmd: [sh, -c, "case {1} in slow) sleep 30;; esac; cp {input_dir}/texts/* {o}"]
            """
        ).replace("{o}", "{output_dir}")
    )
    return store


@pytest.fixture
def write_module(tmp_path: Path) -> Iterator[Callable[[str, str], ModuleType]]:
    """Write ``source`` as a module in tmp_path and import it (fresh each call)."""
    folder = tmp_path / "mods"
    folder.mkdir()
    sys.path.insert(0, str(folder))
    names: list[str] = []

    def write(stem: str, source: str) -> ModuleType:
        name = f"{stem}_{uuid.uuid4().hex[:8]}"
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        names.append(name)
        return importlib.import_module(name)

    yield write
    sys.path.remove(str(folder))
    for name in names:
        sys.modules.pop(name, None)
