"""Sizes, times and durations as people read them, for the CLI's tables and the web UI."""

from __future__ import annotations

from datetime import datetime


def human_size(size: float | None) -> str:
    """``1536`` -> ``'1.5 KiB'``; None -> ``''``.

    >>> human_size(1536)
    '1.5 KiB'
    """
    if size is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def when(epoch: float | None) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``; None -> ``''``."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """``0.25`` -> ``'250 ms'``, ``75`` -> ``'1 min 15 s'``; None -> ``''``.

    >>> duration(75)
    '1 min 15 s'
    """
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


__all__ = ["duration", "human_size", "when"]
