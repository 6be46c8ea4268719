"""Run ``rocrate-validator`` on a crate without network access.

The validator expands ``ro-crate-metadata.json`` as JSON-LD, which fetches the contexts it
names over HTTP. The test machine is offline, so the validator runs with ``--offline`` on an
HTTP cache seeded here: the RO-Crate 1.1 context rebuilt from the 1.3 context the ``rocrate``
package ships (1.3 moved the four Bioschemas workflow terms to new IRIs and added terms; the
four are put back as 1.1 has them), and the Workflow Run context's published terms.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

WFRUN = "https://w3id.org/ro/terms/workflow-run#"
BIOSCHEMAS_1_1 = {
    "ComputationalWorkflow": "https://bioschemas.org/ComputationalWorkflow",
    "FormalParameter": "https://bioschemas.org/FormalParameter",
    "input": "https://bioschemas.org/ComputationalWorkflow#input",
    "output": "https://bioschemas.org/ComputationalWorkflow#output",
}
WFRUN_TERMS = [
    *("ParameterConnection", "ContainerImage", "DockerImage", "SIFImage", "connection"),
    *("sourceParameter", "targetParameter", "md5", "sha1", "sha256", "sha512"),
    *("environment", "registry", "tag", "containerImage", "resourceUsage"),
]


def _contexts() -> dict[str, Any]:
    import rocrate

    bundled = Path(rocrate.__file__).parent / "data" / "ro-crate.jsonld"
    ro = {"@context": {**json.loads(bundled.read_text())["@context"], **BIOSCHEMAS_1_1}}
    wfrun = {"@context": {term: WFRUN + term for term in WFRUN_TERMS}}
    return {
        "https://w3id.org/ro/crate/1.1/context": ro,
        "https://w3id.org/ro/terms/workflow-run/context": wfrun,
    }


def seed_cache(cache: Path) -> Path:
    """A requests-cache SQLite file holding the contexts, as the validator's cache wants it."""
    import requests
    from requests.adapters import BaseAdapter, HTTPAdapter
    from requests_cache import CachedSession
    from urllib3.response import HTTPResponse

    docs = _contexts()

    class Local(BaseAdapter):
        def send(self, request: Any, **_: Any) -> requests.Response:
            body = json.dumps(docs[request.url]).encode()
            raw = HTTPResponse(
                body=io.BytesIO(body),
                headers={"Content-Type": "application/ld+json"},
                status=200,
                preload_content=False,
                request_url=request.url,
            )
            return HTTPAdapter().build_response(request, raw)

        def close(self) -> None:
            pass

    session = CachedSession(
        cache_name=str(cache),
        backend="sqlite",
        expire_after=-1,
        allowable_methods=("GET",),
        allowable_codes=(200, 302, 404),
    )
    session.mount("https://", Local())
    for url in docs:
        assert session.get(url).status_code == 200
    session.close()
    return cache


def validate(crate: Path, cache_dir: Path) -> dict[str, Any]:
    """The validator's JSON report of ``crate`` against the Provenance Run Crate profile."""
    exe = shutil.which("rocrate-validator") or str(
        Path(sys.executable).with_name("rocrate-validator")
    )
    cache = seed_cache(cache_dir / "http_cache")
    report = cache_dir / "report.json"
    proc = subprocess.run(
        [
            exe,
            "validate",
            str(crate),
            "--profile-identifier",
            "provenance-run-crate",
            "--offline",
            "--cache-path",
            str(cache),
            "--no-paging",
            "-f",
            "json",
            "-o",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if not report.exists():
        raise AssertionError(f"rocrate-validator wrote no report:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(report.read_text())
