"""A live per-step progress display fed by the driver's CallEvents, and the run summary."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

FINAL = ("ran", "cached", "failed", "skipped")


class StepProgress:
    """One bar per step: done / cached / failed / running. Use as a context; call it per event."""

    def __init__(self, console: Console, *, live: bool = True) -> None:
        self._bars = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not live,
        )
        self._tasks: dict[str, Any] = {}
        self.counts: dict[str, Counter[str]] = {}
        """Step -> status -> number of calls whose latest event had that status."""
        self._errors: dict[object, tuple[str, str, str]] = {}
        self._status: dict[str, str] = {}
        self._announced: dict[str, int] = {}

    def __enter__(self) -> StepProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bars.stop()

    def __call__(self, event: Any) -> None:
        step, key, status = event.step, event.key, event.status
        if step not in self._tasks:
            self._tasks[step] = self._bars.add_task(step, total=0, detail="")
            self.counts[step] = Counter()
            self._announced[step] = 0
        counts = self.counts[step]
        if status == "planned":
            # Only announces a call (its key may not be known yet); it sizes the bar.
            self._announced[step] += 1
        else:
            previous = self._status.get(key) if key else None
            if previous is not None:
                counts[previous] -= 1  # a retried call leaves its earlier state
            if key:
                self._status[key] = status
            counts[status] += 1
        if status == "failed":
            self._errors[key or object()] = (step, key, one_line(event.error))
        elif key:
            self._errors.pop(key, None)  # a retry that succeeded is not a failure
        self._refresh(step)

    @property
    def errors(self) -> list[tuple[str, str, str]]:
        """(step, key, one-line error) of every call whose last state is failed, in order."""
        return list(self._errors.values())

    def _refresh(self, step: str) -> None:
        counts = self.counts[step]
        done = sum(counts[s] for s in FINAL)
        total = max(self._announced[step], done + counts["running"])
        shown = ("cached", "running", "failed", "skipped")
        parts = [f"{counts[s]} {s}" for s in shown if counts[s]]
        self._bars.update(self._tasks[step], completed=done, total=total, detail=", ".join(parts))

    def summary_table(self) -> Table:
        return summary_table(self.counts)


def summary_table(counts: dict[str, Counter[str]]) -> Table:
    """Per step: how many calls ran, were cached, failed or were skipped."""
    table = Table(title="Run summary")
    table.add_column("step")
    for status in FINAL:
        table.add_column(status, justify="right")
    table.add_column("total", justify="right")
    totals: Counter[str] = Counter()
    for step, per in counts.items():
        row = [per[s] for s in FINAL]
        totals.update({s: per[s] for s in FINAL})
        table.add_row(step, *(str(n) if n else "" for n in row), str(sum(row)))
    if len(counts) > 1:
        table.add_row(
            "[bold]all[/bold]",
            *(str(totals[s]) for s in FINAL),
            str(sum(totals.values())),
        )
    return table


def counts_from_calls(calls: Any) -> dict[str, Counter[str]]:
    """The same counts from a RunResult.calls DataFrame (when no events arrived)."""
    counts: dict[str, Counter[str]] = {}
    for step, status in zip(calls["step"], calls["status"], strict=True):
        counts.setdefault(str(step), Counter())[str(status)] += 1
    return counts


def one_line(error: str | None) -> str:
    text = (error or "").strip()
    if not text:
        return "(no message)"
    lines = text.splitlines()
    # A traceback ends with the exception line; a plain message starts with it.
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]
