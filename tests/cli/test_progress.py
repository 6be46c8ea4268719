"""The run display counts calls per step from the driver's CallEvents."""

from __future__ import annotations

from rich.console import Console

from databacked.cli.progress import StepProgress


def test_counts_follow_each_call_to_its_last_state() -> None:
    from databacked.engine import events

    event = events.CallEvent
    console = Console(record=True, width=120)
    with StepProgress(console, live=False) as progress:
        for _ in range(3):
            progress(event("square", "", "planned"))
        progress(event("square", "k1", "running"))
        progress(event("square", "k1", "ran", seconds=0.1))
        progress(event("square", "k2", "cached"))
        progress(event("square", "k3", "running"))
        progress(event("square", "k3", "failed", error="OSError: disk hiccup"))
        progress(event("square", "k3", "running"))  # retried
        progress(event("square", "k3", "ran", seconds=0.2))
        progress(event("total", "k4", "skipped"))
        progress(event("total", "k5", "failed", error="ValueError: no cells\nmore detail"))
    counts = progress.counts["square"]
    assert (counts["ran"], counts["cached"], counts["failed"], counts["running"]) == (2, 1, 0, 0)
    assert progress.counts["total"]["skipped"] == 1
    # k3 failed once, then its retry ran: only k5 is still a failure.
    assert progress.errors == [("total", "k5", "ValueError: no cells")]
    console.print(progress.summary_table())
    text = console.export_text()
    square = next(line for line in text.splitlines() if "square" in line)
    assert [c.strip() for c in square.strip("│ ").split("│")] == ["square", "2", "1", "", "", "3"]
