"""Per-call logs: what a call prints and logs, kept apart per thread, on every executor.

``sys.stdout``/``sys.stderr`` are replaced once per process by routers that hand a write
to the log of the call running in the writing thread (and still echo it), and a handler on
the root logger, there only while calls run, does the same for ``logging`` records. So
calls running side by side on ``threads`` or on a dask worker each keep their own log,
which a redirect of ``sys.stdout`` (process-wide) cannot do. The whole log goes to the store under
``.databacked/logs/<key>.log``; the catalog keeps its tail.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

LOGS = ".databacked/logs"
"""Folder of whole call logs, relative to the store root."""
MAX_LOG = 16 * 1024 * 1024
"""Characters of one call's log kept whole; beyond, the middle is dropped."""
_local = threading.local()
_lock = threading.Lock()


def log_path(key: str) -> str:
    return f"{LOGS}/{key}.log"


class CallLog:
    """The text a call printed and logged, in order, bounded; and a tail per stream."""

    def __init__(self, limit: int = MAX_LOG, tail: int = 64 * 1024, label: str = "") -> None:
        self.limit, self.tail_limit = limit, tail
        self.label = label
        """Put before each echoed line (not the kept log): which call printed it."""
        self.at_line_start = True
        self.head: list[str] = []
        self.tail: list[str] = []
        self.size = 0
        self.dropped = 0
        self.streams: dict[str, list[str]] = {}

    def write(self, text: str, stream: str = "log") -> None:
        if not text:
            return
        parts = self.streams.setdefault(stream, [])
        parts.append(text)
        if len(parts) > 64 and sum(map(len, parts)) > 2 * self.tail_limit:
            parts[:] = ["".join(parts)[-self.tail_limit :]]
        if self.size < self.limit // 2:
            self.head.append(text)
        else:
            self.tail.append(text)
        self.size += len(text)
        if self.size > 2 * self.limit:  # keep the start and the end, drop the middle
            joined = "".join(self.tail)
            keep = joined[-self.limit // 2 :]
            self.dropped += len(joined) - len(keep)
            self.tail, self.size = [keep], len("".join(self.head)) + len(keep)

    def stream(self, name: str) -> str:
        """The last characters written to one stream (``stdout``, ``stderr``, ``log``)."""
        return "".join(self.streams.get(name, ()))[-self.tail_limit :]

    def text(self) -> str:
        middle = f"\n[... {self.dropped} characters left out ...]\n" if self.dropped else ""
        return "".join(self.head) + middle + "".join(self.tail)


class _Router(io.TextIOBase):
    """Stands in for ``sys.stdout``/``sys.stderr``: a thread's call log gets its writes."""

    def __init__(self, name: str, original: Any) -> None:
        super().__init__()
        self.name, self.original = name, original

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        log = getattr(_local, "log", None)
        if log is None:
            return self.original.write(text)
        log.write(text, self.name)
        if log.label and text:
            self.original.write(_labelled(log, text))
        else:
            self.original.write(text)
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def fileno(self) -> int:
        return int(self.original.fileno())

    def isatty(self) -> bool:
        return bool(getattr(self.original, "isatty", lambda: False)())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.original, "encoding", "utf-8"))


def _labelled(log: CallLog, text: str) -> str:
    """``text`` with the call's label at the start of each line, when many calls print."""
    lines = text.split("\n")
    head = log.label if log.at_line_start and lines[0] else ""
    log.at_line_start = text.endswith("\n")
    rest = [log.label + line if line else line for line in lines[1:]]
    return "\n".join([head + lines[0], *rest])


class _Handler(logging.Handler):
    """On the root logger while calls run: a record logged during a call joins that call's
    log. Any other record (another thread's) gets what logging would give it without us:
    warnings and worse to stderr when no other handler takes it."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        log = getattr(_local, "log", None)
        if log is None:  # not this thread's call: the router passes the write through
            last = logging.lastResort
            if last is None or record.levelno < last.level:
                return
            if not _handled_elsewhere(record, self):
                last.handle(record)
            return
        try:
            log.write(self.format(record) + "\n")
        except Exception:  # a record that cannot be formatted must not fail the call
            self.handleError(record)


def _handled_elsewhere(record: logging.LogRecord, ours: logging.Handler) -> bool:
    """Whether a handler other than ``ours`` saw ``record`` (else logging's last resort
    would have printed it)."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not ours for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


_HANDLER = _Handler()
_active = [0]
"""Calls (and batches) capturing in this process now."""
_lowered: list[int] = []
"""The root level to put back when the last capture ends, if it was lowered."""


def install() -> None:
    """Put the routers in place (again, if something replaced ``sys.stdout`` since); they
    pass writes through untouched outside calls."""
    if not isinstance(sys.stdout, _Router) and sys.stdout is not None:
        sys.stdout = _Router("stdout", sys.stdout)
    if not isinstance(sys.stderr, _Router) and sys.stderr is not None:
        sys.stderr = _Router("stderr", sys.stderr)


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Keep the root handler in place across several calls (a batch), so each call does not
    add and remove it again. Logging is left as it was found when the last session ends.

    With logging unconfigured (no root handler) the root level is lowered to INFO while calls
    run, so their INFO records reach their logs, and put back afterwards; records outside
    calls still show only from WARNING up (the handler filters them as logging would).
    """
    root = logging.getLogger()
    with _lock:
        _active[0] += 1
        if _active[0] == 1:
            if not root.handlers and root.level > logging.INFO:
                _lowered.append(root.level)
                root.setLevel(logging.INFO)
            root.addHandler(_HANDLER)
    try:
        yield
    finally:
        with _lock:
            _active[0] -= 1
            if _active[0] == 0:
                root.removeHandler(_HANDLER)
                if _lowered:
                    level = _lowered.pop()
                    # unless a call configured logging itself meanwhile
                    if root.level == logging.INFO and not root.handlers:
                        root.setLevel(level)


@contextlib.contextmanager
def capturing(tail: int = 64 * 1024, label: str = "") -> Iterator[CallLog]:
    """Collect what the current thread prints and logs while the block runs (echoed with
    ``label`` before each line)."""
    install()
    log = CallLog(tail=tail, label=label)
    previous = getattr(_local, "log", None)
    _local.log = log
    try:
        with session():
            yield log
    finally:
        _local.log = previous


def add(text: str, stream: str = "log") -> None:
    """Add ``text`` to the log of the call running in this thread, without echoing it (output
    a call collected itself, such as a command's); nothing outside calls."""
    log = getattr(_local, "log", None)
    if log is not None:
        log.write(text, stream)


def keep(store: Any, key: str, text: str) -> None:
    """Write a call's whole log to the store (``.databacked/logs/<key>.log``); never raises."""
    if not text:
        return
    try:
        store.put_bytes(log_path(key), text.encode("utf-8", "replace"))
    except Exception as exc:  # the log is a convenience: the call's own result stands
        logging.getLogger("databacked.engine.capture").debug("log of %s not kept: %s", key, exc)


__all__ = ["LOGS", "CallLog", "add", "capturing", "install", "keep", "log_path", "session"]
