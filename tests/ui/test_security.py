"""The UI's security rules, over HTTP against a real server: Host, token, methods, headers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import blake3
import httpx
import pytest

from databacked.errors import CatalogError

Site = Any
TOKEN = "a-test-token-that-is-long-enough"


def _csp(response: httpx.Response) -> list[str]:
    return response.headers.get_list("content-security-policy")


@pytest.fixture(scope="module")
def client(demo_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_url) as c:
        yield c


@pytest.fixture(scope="module")
def token_url(demo_site: Site) -> Iterator[str]:
    from databacked.ui import create_app
    from databacked.ui.server import background

    # Built as for a 0.0.0.0 bind (token required); served on loopback for the test.
    with background(create_app(demo_site.catalog, host="0.0.0.0", token=TOKEN)) as base:
        yield base


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "", "127.0.0.2.nip.io"])
def test_a_foreign_host_header_is_refused(client: httpx.Client, host: str):
    response = client.get("/runs", headers={"host": host})
    assert response.status_code == 400
    assert "default-src 'self'" in _csp(response)[0]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_loopback_host_names_are_served(client: httpx.Client, demo_url: str, host: str):
    port = urlparse(demo_url).port
    assert client.get("/runs", headers={"host": f"{host}:{port}"}).status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_get_and_head(client: httpx.Client, demo_site: Site, method: str):
    path = Path(demo_site.catalog.removeprefix("sqlite:///"))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    response = client.request(method, f"/api/runs/{demo_site.run_ids['demo']}")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert client.head("/runs").status_code == 200


def test_headers_on_every_kind_of_answer(client: httpx.Client, demo_site: Site):
    digest = demo_site.hashes["tiff"]
    for path in [
        "/runs",
        "/api/runs",
        f"/api/artifacts/{digest}/thumbnail.png",
        "/static/htmx.min.js",
        "/no/such/page",
        "/api/runs/nope",
        "/openapi.json",
    ]:
        response = client.get(path)
        assert any(p.startswith("default-src 'self'") for p in _csp(response)), path
        assert response.headers["x-content-type-options"] == "nosniff", path


def test_artifact_bytes_are_a_sandboxed_attachment(client: httpx.Client, demo_site: Site):
    digest = demo_site.hashes["summary"]
    response = client.get(f"/api/artifacts/{digest}/content")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith('attachment; filename="summary.csv"')
    assert "sandbox" in _csp(response)
    assert response.headers["content-type"] == "application/octet-stream"
    assert blake3.blake3(response.content).hexdigest() == digest


def test_markup_named_artifact_downloads_under_a_safe_name(client: httpx.Client, demo_site: Site):
    response = client.get(f"/api/artifacts/{demo_site.hashes['odd']}/content")
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    assert "<" not in disposition.split("filename*=")[0]
    assert "sandbox" in _csp(response)


@pytest.mark.parametrize(
    "path",
    [
        "/api/artifacts/..%2f..%2f..%2fetc%2fpasswd/content",
        "/api/artifacts/%2e%2e/content",
        "/api/artifacts/%2fetc%2fpasswd/content",
        "/api/artifacts//etc/passwd/content",
        "/static/..%2fapp.py",
        "/static/%2e%2e/%2e%2e/catalog.db",
        "/artifacts/../../../../etc/passwd",
        "/api/artifacts/etc/passwd",
        "/api/lineage/..%2Fcatalog.db",
        "/calls/..%2f..%2fetc",
    ],
)
def test_traversal_probes_are_not_found(client: httpx.Client, path: str):
    response = client.get(path)
    assert response.status_code == 404
    assert b"root:" not in response.content


def test_no_route_takes_a_path(demo_url: str):
    schema = httpx.get(f"{demo_url}/openapi.json").json()
    for route, item in schema["paths"].items():
        for op in item.values():
            names = [p["name"] for p in op.get("parameters", [])]
            assert not {"path", "file", "filename", "url"} & set(names), route


def test_token_required_then_exchanged_for_a_cookie(token_url: str):
    with httpx.Client(base_url=token_url, follow_redirects=False) as anonymous:
        assert anonymous.get("/runs").status_code == 401
        assert anonymous.get("/api/runs").status_code == 401
        assert anonymous.get("/runs?token=wrong-token-of-some-length").status_code == 401
        assert anonymous.get("/runs?token=t%C3%B6ken").status_code == 401
        assert (
            anonymous.get("/api/runs", headers={"authorization": "Bearer nope"}).status_code == 401
        )
        login = anonymous.get(f"/runs?status=ok&token={TOKEN}")
        assert login.status_code == 303
        assert login.headers["location"] == "/runs?status=ok"
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert TOKEN not in login.headers["location"]
        assert anonymous.get("/runs").status_code == 200  # the cookie jar now has it
    with httpx.Client(base_url=token_url, follow_redirects=False) as fresh:
        crlf = fresh.get(f"/runs%0d%0aSet-Cookie:%20x=1?token={TOKEN}")
        assert crlf.status_code == 303
        assert "\r" not in crlf.headers["location"]
        assert crlf.headers.get_list("set-cookie") == [crlf.headers["set-cookie"]]
        assert "x=1" not in crlf.headers["set-cookie"]
    with httpx.Client(base_url=token_url) as script:
        bearer = script.get("/api/runs", headers={"authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200


def test_the_catalog_is_opened_read_only(demo_site: Site):
    from databacked.ui.source import open_catalog

    catalog = open_catalog(demo_site.catalog)
    try:
        assert len(catalog.runs()) == 2
        with pytest.raises(CatalogError, match="readonly"):
            catalog.start_run({"pipeline": "sneaky"})
    finally:
        catalog.close()


def test_a_missing_sqlite_catalog_is_a_clear_error(tmp_path: Any):
    from databacked.errors import ConfigError
    from databacked.ui.source import open_catalog

    with pytest.raises(ConfigError, match="No catalog at"):
        open_catalog(f"sqlite:///{tmp_path / 'nothing.db'}")
    assert not (tmp_path / "nothing.db").exists()


def test_a_calls_log_file_is_shown_when_kept(client: httpx.Client, demo_site: Site):
    """The engine keeps each call's whole log under .databacked/logs/: the call page links
    it and serves it as sandboxed text; without it (older catalogs) the page says so."""
    failed = client.get(f"/api/runs/{demo_site.run_ids['flaky']}/calls?status=failed").json()
    key = failed["calls"][0]["key"]
    log = Path(demo_site.store) / ".databacked" / "logs" / f"{key}.log"
    assert log.is_file()  # written by the engine for the failed call
    saved = log.read_bytes()
    log.write_text("squaring 3\n<script>document.title='pwned'</script>\n")
    try:
        page = client.get(f"/calls/{key}").text
        assert f'href="/calls/{key}/log"' in page
        assert 'id="no-log-file"' not in page
        whole = client.get(f"/calls/{key}/log")
        assert whole.status_code == 200
        assert whole.headers["content-type"].startswith("text/plain")
        assert "sandbox" in _csp(whole)
        assert "squaring 3" in whole.text
        log.unlink()
        assert client.get(f"/calls/{key}/log").status_code == 404
        assert 'id="no-log-file"' in client.get(f"/calls/{key}").text
    finally:
        log.write_bytes(saved)


def test_an_ome_zarr_folder_downloads_as_a_zip(client: httpx.Client, demo_site: Site):
    import io
    import zipfile

    response = client.get(f"/api/artifacts/{demo_site.hashes['zarr']}/content")
    assert response.status_code == 200
    assert 'filename="stack.ome.zarr.zip"' in response.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "stack.ome.zarr/zarr.json" in names
    assert all(n.startswith("stack.ome.zarr/") for n in names)


def test_bytes_outside_the_store_are_never_served(client: httpx.Client, demo_site: Site):
    """The demo's raw images are inputs by absolute path, outside the store: not served."""
    calls = client.get(f"/api/runs/{demo_site.run_ids['demo']}/calls?step=select_cell").json()
    detail = client.get(f"/api/calls/{calls['calls'][0]['key']}").json()
    raw = next(i for i in detail["inputs"] if i["path"] and i["path"].startswith("/"))
    assert Path(raw["path"]).exists()
    assert client.get(f"/api/artifacts/{raw['hash']}").status_code == 200  # known, described
    assert client.get(f"/api/artifacts/{raw['hash']}/content").status_code == 404
    assert client.get(f"/api/artifacts/{raw['hash']}/thumbnail.png").status_code == 404
