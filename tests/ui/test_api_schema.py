"""Schemathesis over the UI's /openapi.json on a real server: no 5xx, answers match the schema."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

Site = Any


def test_api_matches_its_schema(demo_url: str) -> None:
    """Every operation, a bounded number of generated requests each (hypothesis, derandomized)."""
    schema = schemathesis.openapi.from_url(f"{demo_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=8,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate()

        check()


def test_documented_routes_are_the_issues(demo_url: str) -> None:
    import httpx

    paths = set(httpx.get(f"{demo_url}/openapi.json").json()["paths"])
    assert paths == {
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/calls",
        "/api/calls/{key}",
        "/api/artifacts",
        "/api/artifacts/{digest}",
        "/api/artifacts/{digest}/thumbnail.png",
        "/api/artifacts/{digest}/content",
        "/api/lineage/{digest}",
    }


def test_real_ids_answer_with_their_schema(demo_url: str, demo_site: Site) -> None:
    """Random ids mostly meet 404s; these requests use the catalog's own ids."""
    import httpx

    run_id = demo_site.run_ids["flaky"]
    with httpx.Client(base_url=demo_url) as client:
        calls = client.get(f"/api/runs/{run_id}/calls", params={"limit": 2}).json()
        assert [c["status"] for c in calls["calls"]] == ["failed", "ran"]
        more = client.get(f"/api/runs/{run_id}/calls", params={"after": calls["next"]}).json()
        keys = [c["key"] for c in calls["calls"] + more["calls"]]
        assert len(keys) == len(set(keys)) == 6  # 5 squares ran, 1 failed (total: not recorded)
        detail = client.get(f"/api/calls/{keys[0]}").json()
        assert detail["error_type"] == "ValueError"
        today = date.today()
        assert len(client.get("/api/runs", params={"since": today.isoformat()}).json()["runs"]) == 2
        later = (today + timedelta(days=1)).isoformat()
        assert client.get("/api/runs", params={"since": later}).json()["runs"] == []
        ok = client.get("/api/runs", params={"status": "ok", "pipeline": "cells"}).json()
        assert [r["id"] for r in ok["runs"]] == [demo_site.run_ids["demo"]]
        one = client.get("/api/runs", params={"limit": 1}).json()
        older = client.get("/api/runs", params={"before": one["next"]}).json()
        assert [r["id"] for r in one["runs"] + older["runs"]] == [
            demo_site.run_ids["flaky"],
            demo_site.run_ids["demo"],
        ]
        lineage = client.get(f"/api/lineage/{demo_site.hashes['tiff']}").json()
        assert {n["kind"] for n in lineage["nodes"]} == {"artifact", "call"}
