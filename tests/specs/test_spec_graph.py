"""Pipelines run in the order of the repos they read; cycles and missing repos are errors."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from databacked.errors import SpecError
from databacked.specs import load_text, spec_order
from databacked.store import Store


def specs(*pairs: tuple[str, str]) -> list:
    text = "---\n".join(
        f"pipeline: {name}\ninput: {{pfs: {{repo: {repo}, glob: /*}}}}\n"
        "transform: {python: m:f}\n"
        for name, repo in pairs
    )
    return load_text(text, "pipelines/all.yml")


def test_order_follows_repo_dependencies(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put_bytes("raw/a.tif", b"a")
    given = specs(("report", "measure"), ("measure", "segment"), ("segment", "raw"))
    assert [s.pipeline for s in spec_order(given, store)] == ["segment", "measure", "report"]
    union = load_text(
        "pipeline: both\ninput: {union: [{repo: report, glob: /*}, {repo: raw, glob: /*}]}\n"
        "transform: {python: m:f}\n"
    )
    order = [s.pipeline for s in spec_order([*union, *given], store)]
    assert order == ["segment", "measure", "report", "both"]


def test_a_cycle_is_named(tmp_path: Path) -> None:
    given = specs(("a", "b"), ("b", "c"), ("c", "a"), ("d", "raw"))
    with pytest.raises(SpecError, match=r"pipelines form a cycle: (\w -> ){3}\w") as info:
        spec_order(given)
    assert "pipelines/all.yml, line" in str(info.value)
    with pytest.raises(SpecError, match="cycle: self -> self"):
        spec_order(specs(("self", "self")))


def test_a_missing_repo_waits_as_the_watcher_says(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "data")
    store.put_bytes("images/a.png", b"a")
    with caplog.at_level(logging.WARNING, logger="databacked"):
        spec_order(specs(("edges", "images")), store)
        assert not caplog.records
        assert [s.pipeline for s in spec_order(specs(("measure", "raw")), store)] == ["measure"]
    [record] = caplog.records
    assert re.match(
        r"pipelines/all\.yml, line 1: repo 'raw' does not exist in .*data yet; the "
        "pipelines reading it wait until files arrive there",
        record.getMessage(),
    )
