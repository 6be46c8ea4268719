"""The campaign's figures: one row per scenario, rendered as RELIABILITY.md."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field


@dataclass
class Row:
    scenario: str
    runs: int = 0
    faults: int = 0
    lost_or_corrupt: int = 0
    twice: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Campaign:
    """Figures of every scenario run in this session, by scenario name."""

    rows: dict[str, Row] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(
        self,
        scenario: str,
        *,
        runs: int = 1,
        faults: int = 0,
        lost_or_corrupt: int = 0,
        twice: int = 0,
        note: str = "",
    ) -> None:
        row = self.rows.setdefault(scenario, Row(scenario))
        row.runs += runs
        row.faults += faults
        row.lost_or_corrupt += lost_or_corrupt
        row.twice += twice
        if note and note not in row.notes:
            row.notes.append(note)


def render(campaign: Campaign, exitstatus: int, seconds: float) -> str:
    rows = sorted(campaign.rows.values(), key=lambda r: r.scenario)
    total = Row("**total**")
    for row in rows:
        total.runs += row.runs
        total.faults += row.faults
        total.lost_or_corrupt += row.lost_or_corrupt
        total.twice += row.twice
    lines = [
        "# Reliability: the fault-injection campaign",
        "",
        "Written by `make soak` (`tests/reliability/`, all scenarios; `make test` runs the "
        "fast subset). Goals: **0** artifacts lost or corrupted, **0** keys computed twice.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}",
        f"- wall time: {seconds / 60:.1f} min; pytest exit status {exitstatus}"
        + (" (all passed)" if exitstatus == 0 else " (FAILURES: see the log)"),
        "",
        "| scenario | runs | faults injected | artifacts lost or corrupted | keys computed "
        "twice | notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in [*rows, total]:
        lines.append(
            f"| {row.scenario} | {row.runs} | {row.faults} | {row.lost_or_corrupt} | "
            f"{row.twice} | {'; '.join(row.notes)} |"
        )
    if campaign.failures:
        lines += ["", "## Failed tests", ""] + [f"- `{name}`" for name in campaign.failures]
    if campaign.examples:
        lines += ["", "## Property tests (hypothesis)", "", "| property | examples |", "|---|---:|"]
        for name, count in sorted(campaign.examples.items()):
            lines.append(f"| {name} | {count} |")
    lines += [
        "",
        "Definitions: a *run* is one process (or one operation) under fault; a *fault* is one "
        "SIGKILL at a crash point, one injected errno, one proxied S3 failure or one hostile "
        "input; *lost or corrupted* counts outputs that a later read or `verify` found "
        "missing or wrong, or a recorded call that had to compute again; *computed twice* "
        "counts keys whose function ran more than once across concurrent drivers.",
        "",
    ]
    return "\n".join(lines)
