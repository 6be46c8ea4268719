"""``databacked ui``: a non-loopback bind starts only with a token, printed once as a URL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from databacked.testing.services import free_port

Site = Any
DATABACKED = Path(sys.executable).with_name("databacked")


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src, "COLUMNS": "200"}


def test_wildcard_bind_generates_a_token_and_prints_a_login_url(demo_site: Site):
    port = free_port()
    proc = subprocess.Popen(
        [
            str(DATABACKED),
            "ui",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--catalog",
            demo_site.catalog,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(rf"http://\S+:{port}/\?token=(\S+)", line)
        assert match, line
        token = match.group(1)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                anonymous = httpx.get(f"{base}/runs")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        assert anonymous.status_code == 401
        login = httpx.get(f"{base}/runs?token={token}")
        assert login.status_code == 303
        assert "HttpOnly" in login.headers["set-cookie"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_missing_catalog_is_one_sentence(tmp_path: Path):
    proc = subprocess.run(
        [str(DATABACKED), "ui", "--catalog", f"sqlite:///{tmp_path / 'none.db'}"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    assert "No catalog at" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "none.db").exists()


def test_a_short_token_is_refused(demo_site: Site):
    proc = subprocess.run(
        [str(DATABACKED), "ui", "--token", "short", "--catalog", demo_site.catalog],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    assert "too short" in proc.stderr
