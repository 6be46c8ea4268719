"""The fault-injection campaign's plumbing: soak selection and the RELIABILITY.md figures.

Tests marked ``soak`` run only with ``DATABACKED_SOAK=1`` (``make soak``); the rest is the
fast subset that ``make test`` runs. Every scenario adds a row to ``campaign`` (runs, faults
injected, artifacts lost or corrupted, keys computed twice); with
``DATABACKED_RELIABILITY_REPORT=path`` the session writes those rows there as markdown.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # campaign_app, reliability_report, faultproxy

from reliability_report import Campaign, render  # noqa: E402

SOAK = os.environ.get("DATABACKED_SOAK") == "1"


_CAMPAIGN = Campaign()
_STARTED = time.time()


@pytest.fixture(scope="session")
def campaign() -> Campaign:
    return _CAMPAIGN


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SOAK:
        return
    soak = [item for item in items if item.get_closest_marker("soak")]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _CAMPAIGN.failures.append(f"{report.nodeid} ({report.when})")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("DATABACKED_RELIABILITY_REPORT")
    if not target or not _CAMPAIGN.rows:
        return
    Path(target).write_text(render(_CAMPAIGN, exitstatus, time.time() - _STARTED))
