"""One redaction function (``databacked.secrets``), and an end-to-end canary scan: a pipeline
on S3 (moto) with keys in storage_options, a PostgreSQL catalog URL with a password and a
Redis broker URL with a password, run by the CLI on a Celery worker; then every catalog
table, every CLI command's output, the logs, the worker's output and a message on the broker
are searched for the canary strings."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from databacked.config import PlainSettings
from databacked.secrets import RedactingFilter, is_secret_key, public, redact, redact_text

KEY = "AKIACANARYKEY7QX4Z"
SECRET = "canarySecretW9vT2pLm"
TOKEN = "canaryTokenR5sN8d"
DB_PASSWORD = "canaryDbPw3Kf8"
BROKER_PASSWORD = "canaryBrokerPw6Hj1"
CANARIES = (KEY, SECRET, TOKEN, DB_PASSWORD, BROKER_PASSWORD)


def _hits(text: str) -> list[str]:
    return [c for c in CANARIES if c in text]


# --- the rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["key", "secret", "token", "password", "passwd", "credentials", "session_token",
     "private_key", "Authorization", "aws_secret_access_key", "AWSSecretKey", "key_id",
     "client_secret", "sessionToken", "auth"],
)  # fmt: skip
def test_secret_looking_names(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name", ["store", "catalog", "endpoint_url", "client_kwargs", "region_name", "workers",
             "durability", "queue", "broker", "storage_options", "threads_per_worker"],
)  # fmt: skip
def test_ordinary_names(name: str) -> None:
    assert not is_secret_key(name)


def test_redact_masks_nested_values_and_url_passwords() -> None:
    config = {
        "storage_options": {"key": KEY, "secret": SECRET, "endpoint_url": "http://127.0.0.1:9000",
                            "client_kwargs": {"aws_session_token": TOKEN}},
        "catalog": f"postgresql+psycopg://app:{DB_PASSWORD}@db.lab/cells",
        "celery": {"broker": f"redis://:{BROKER_PASSWORD}@127.0.0.1:6379/0"},
        "list": [f"amqp://guest:{BROKER_PASSWORD}@rabbit//", {"password": DB_PASSWORD}],
        "empty": {"key": None},
    }  # fmt: skip
    shown = redact(config)
    assert _hits(json.dumps(shown)) == []
    assert shown["storage_options"]["endpoint_url"] == "http://127.0.0.1:9000"
    assert shown["catalog"] == "postgresql+psycopg://app:***@db.lab/cells"
    assert shown["celery"]["broker"] == "redis://:***@127.0.0.1:6379/0"
    assert shown["empty"] == {"key": None}


def test_redact_text_masks_pairs_and_query_parameters() -> None:
    text = f"host=db password={DB_PASSWORD} url=https://x/?token={TOKEN}&page=2 user=me"
    assert _hits(redact_text(text)) == []
    assert "page=2" in redact_text(text)
    assert "user=me" in redact_text(text)


def test_public_drops_credentials_for_the_wire() -> None:
    options = {"key": KEY, "secret": SECRET, "profile": "lab", "endpoint_url": "http://s3",
               "client_kwargs": {"region_name": "eu", "aws_session_token": TOKEN}}  # fmt: skip
    assert public(options) == {"endpoint_url": "http://s3", "client_kwargs": {"region_name": "eu"}}


def test_settings_redacted_masks_storage_options_key() -> None:
    # The bug this module fixes: a bare "key" in storage_options reached the run's row.
    settings = PlainSettings(storage_options={"key": KEY, "secret": SECRET})
    assert _hits(json.dumps(settings.redacted())) == []


def test_the_log_filter_masks_messages_and_arguments() -> None:
    record = logging.LogRecord("databacked.x", logging.WARNING, __file__, 1,
                               "cannot reach %s with %s", (f"amqp://u:{BROKER_PASSWORD}@h//",
                               {"password": DB_PASSWORD}), None)  # fmt: skip
    RedactingFilter().filter(record)
    assert _hits(record.getMessage()) == []


def test_the_copies_are_gone() -> None:
    """Every module that shows URLs or options calls databacked.secrets, not a copy."""
    from databacked.catalog.connect import redact as catalog_redact
    from databacked.config import redact as config_redact
    from databacked.executors.celery import redact as celery_redact
    from databacked.executors.wire import public_options
    from databacked.store.base import _redact as store_redact

    url = f"postgresql://u:{DB_PASSWORD}@h/db"
    for fn in (catalog_redact, config_redact, celery_redact, store_redact):
        assert _hits(str(fn(url))) == []
    assert config_redact is redact
    assert public_options({"key": KEY}) == {}


# --- end to end ---------------------------------------------------------------------------------

PIPELINE = """
import databacked as db


@db.step(target="tables/{i}.json")
def measure(i: int) -> dict:
    import os

    # A careless step prints its connection string: the per-call log must not keep it.
    print("measuring", i, "with", os.environ["LAB_DATABASE_URL"])
    return {"i": i, "area": 10 * i}


@db.step(target="summary.json")
def summarize(rows: list[dict]) -> dict:
    return {"total": sum(r["area"] for r in rows)}


@db.pipeline
def small(n: int = 3):
    return summarize(rows=measure.map(i=list(range(n))))
"""


@contextmanager
def _celery_worker(project: Path, env: dict[str, str], log: Path) -> Iterator[None]:
    command = [sys.executable, "-c", "from databacked.cli import main; main()", "worker",
               "--concurrency", "1"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=project, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the celery worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def test_no_canary_reaches_catalog_cli_logs_or_messages(
    tmp_path: Path,
    s3_bucket: str,
    s3_endpoint: str,
    postgres_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from databacked.cli.app import app

    project = tmp_path / "project"
    project.mkdir()
    (project / "pipes.py").write_text(PIPELINE)
    catalog = postgres_url.replace("://postgres@", f"://postgres:{DB_PASSWORD}@", 1)
    assert DB_PASSWORD in catalog  # trust auth ignores it; what matters is where it goes
    scheme, rest = redis_url.split("://", 1)
    broker = f"{scheme}://:{BROKER_PASSWORD}@{rest}"
    queue = f"databacked-canary-{uuid.uuid4().hex[:10]}"
    options = {"key": KEY, "secret": SECRET, "endpoint_url": s3_endpoint,
               "client_kwargs": {"aws_session_token": TOKEN}}  # fmt: skip
    env = {
        "DATABACKED_STORE": f"{s3_bucket}/canary",
        "DATABACKED_STORAGE_OPTIONS": json.dumps(options),
        "DATABACKED_CATALOG": catalog,
        "DATABACKED_CELERY__BROKER": broker,
        "DATABACKED_CELERY__QUEUE": queue,
        "COLUMNS": "200",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(project)
    caplog.set_level(logging.DEBUG)
    worker_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path),
        "LAB_DATABASE_URL": f"postgresql://lab:{DB_PASSWORD}@db.lab/images",
    }
    outputs: dict[str, str] = {}
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args))
        outputs[" ".join(args)] = result.output
        return result.output

    with _celery_worker(project, worker_env, tmp_path / "worker.log"):
        ran = runner.invoke(app, ["run", "pipes.py:small", "--executor", "celery"])
        outputs["run"] = ran.output
        assert ran.exit_code == 0, ran.output
        cli("plan", "pipes.py:small")
        cli("run", "pipes.py:small", "--executor", "celery", "--dry-run")
    cli("status")
    cli("ls")
    cli("show", "summary.json")
    cli("lineage", "summary.json")
    cli("verify")
    cli("gc", "--dry-run")
    cli("init")
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        first_key = conn.execute(sa.text("SELECT key FROM calls")).scalars().first()
    cli("show", first_key[:12])
    # A bad catalog URL with a password: the error sentence must not carry it.
    cli("status", "--catalog", f"postgresql+psycopg://u:{DB_PASSWORD}@127.0.0.1:1/none")
    cli("status", "--debug", "--catalog", f"postgresql+psycopg://u:{DB_PASSWORD}@127.0.0.1:1/x")

    # A message on the broker, exactly as the executor sends it (no worker on this queue).
    message = _message_on_the_broker(redis_url, broker, s3_bucket, options)

    rows = 0
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        assert {"runs", "calls", "artifacts"} <= set(tables)
        for table in tables:
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                rows += 1
                assert _hits(str(tuple(row))) == [], (table, row)
        # the session's database also holds other tests' calls of steps named 'measure'
        query = sa.text("SELECT stdout FROM calls WHERE step = 'measure' AND stdout LIKE :p")
        logs = list(conn.execute(query, {"p": "measuring %"}).scalars())
    engine.dispose()
    assert rows > 0
    assert len(logs) == 3
    assert all("postgresql://lab:***@db.lab/images" in text for text in logs), logs
    for command, output in outputs.items():
        assert _hits(output) == [], (command, output)
    assert "summary.json" in outputs["ls"]
    summary = f"{s3_bucket}/canary/summary.json".removeprefix("s3://")
    assert json.loads(_s3_bytes(s3_endpoint, summary)) == {"total": 30}
    assert _hits((tmp_path / "worker.log").read_text()) == []
    assert "***" in (tmp_path / "worker.log").read_text()  # it did print the broker, masked
    assert _hits(caplog.text) == []
    assert _hits(message) == []


def _s3_bytes(endpoint: str, path: str) -> bytes:
    import boto3

    bucket, _, key = path.partition("/")
    client = boto3.client("s3", endpoint_url=endpoint)
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def _message_on_the_broker(redis_url: str, broker: str, bucket: str, options: dict) -> str:
    """The raw message (and its unpacked call tar) the celery executor puts on the queue."""
    import redis

    from databacked.executors.celery import CeleryExecutor
    from databacked.store import Store
    from databacked.testing.executor_contract import echo

    queue = f"databacked-canary-msg-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(redis_url)
    store = Store(f"{bucket}/canary", storage_options=options)
    with CeleryExecutor(broker=broker, queue=queue) as ex:
        ex.submit(echo, store)
        deadline = time.monotonic() + 30
        while not client.llen(queue):
            assert time.monotonic() < deadline, "the message never reached the queue"
            time.sleep(0.05)
        raw = client.lindex(queue, 0).decode()
    client.delete(queue)
    body = json.loads(base64.b64decode(json.loads(raw)["body"]))
    call_tar = gzip.decompress(base64.b64decode(body[0][0]))
    return raw + call_tar.decode("latin-1")


def test_a_long_token_in_a_log_is_scanned_once() -> None:
    """A step printing one huge word (progress dots, base64) must not stall the driver:
    the patterns only start at a token's start, so this is linear, not quadratic."""
    from databacked.secrets import redact_text

    blob = "x" * 1_000_000
    assert redact_text(blob) == blob
    text = f"{blob} password=hunter2 {blob}:{blob} postgresql://u:pw@h/db"
    out = redact_text(text)
    assert "hunter2" not in out and ":pw@" not in out
    assert out.count("x") == 3_000_000
