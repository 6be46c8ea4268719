"""A call's whole log file in the store (``.databacked/logs/``), when the engine kept one.

The catalog holds a tail of each call's output (stdout, stderr, error and traceback), which
the call page always shows. Engines that also write the whole log to the store record where;
older catalogs have no such file, and the page says so instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from databacked.errors import DatabackedError

if TYPE_CHECKING:
    from databacked.store import Store
    from databacked.ui.source import Source

LOG_FOLDER = ".databacked/logs"
MAX_BYTES = 4 * 1024 * 1024
"""The log page shows at most the last 4 MiB of a log file."""


@dataclass(frozen=True, slots=True)
class LogFile:
    store: Store
    path: str
    size: int

    def text(self) -> str:
        with self.store.open(self.path) as fh:
            if self.size > MAX_BYTES:
                fh.seek(self.size - MAX_BYTES)
            data = fh.read(MAX_BYTES)
        return data.decode("utf-8", "replace")


def candidates(call: dict[str, Any]) -> list[str]:
    """Where a call's log may be: the recorded path, then the conventional names by key."""
    key, step = call["key"], call["step"]
    found = [call["log_path"]] if call.get("log_path") else []
    safe_step = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in step)
    found += [
        f"{LOG_FOLDER}/{key}.log",
        f"{LOG_FOLDER}/{safe_step}/{key}.log",
        f"{LOG_FOLDER}/{key[:2]}/{key}.log",
    ]
    return found


def _stores(call: dict[str, Any]) -> list[str]:
    urls = [o["store"] for o in call.get("outputs") or [] if o.get("store")]
    run = call.get("run") or {}
    if (run.get("config") or {}).get("store"):
        urls.append(run["config"]["store"])
    return list(dict.fromkeys(urls))


def full_log(source: Source, call: dict[str, Any]) -> LogFile | None:
    """The call's log file, or None when none was kept (or its store is not readable)."""
    for url in _stores(call):
        store = source.store(url)
        if store is None:
            continue
        for path in candidates(call):
            try:
                checked = store.check_path(path)
                info = store.info(checked)
            except (DatabackedError, OSError):
                continue
            return LogFile(store, checked, info.size)
    return None


__all__ = ["LOG_FOLDER", "LogFile", "candidates", "full_log"]
