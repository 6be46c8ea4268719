"""Progress events: the driver emits one ``CallEvent`` per state change of a call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EventStatus = Literal["planned", "cached", "running", "ran", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One state change of one call, emitted in the driver process."""

    step: str
    """Step name."""
    key: str
    """Call key (empty while the key is not known yet)."""
    status: EventStatus
    """What happened to the call."""
    seconds: float | None = None
    """Run time of a finished call."""
    error: str | None = None
    """One-line error of a failed call."""


__all__ = ["CallEvent", "EventStatus"]
