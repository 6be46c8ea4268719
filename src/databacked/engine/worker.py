"""Run one call: load inputs, call the function, write outputs. The only code executors run.

A worker gets the store, never the catalog: it returns a ``CallOutcome`` and the driver
records it. Everything here travels between processes, so it is frozen and picklable.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from databacked.errors import CallTimeout

OBJECTS = ".databacked/objects"
"""Where outputs without a target live, relative to the store root."""
CAPTURE_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One input of a call: an artifact in the store, or an in-memory value."""

    hash: str
    """Content hash (or value hash for an in-memory value)."""
    path: str | None = None
    """Path in the store; None for an in-memory value."""
    format: dict[str, Any] | None = None
    """Format spec to read it with."""
    value: Any = None
    """The value itself, for ``persist=False`` upstreams."""


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """Where one output goes: a rendered target, or None for the object area."""

    path: str | None
    format: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CallSpec:
    """Everything a worker needs to run one call."""

    key: str
    step: str
    function: Callable[..., Any] | str
    """The function, or an importable reference ``module:qualname``."""
    params: dict[str, Any] = field(default_factory=dict)
    """Constant arguments (File parameters as their path)."""
    inputs: dict[str, InputSpec | tuple[InputSpec, ...]] = field(default_factory=dict)
    """Arguments loaded from the store (a tuple for a reducer's list)."""
    outputs: dict[str, OutputSpec] = field(default_factory=dict)
    multi: bool = False
    """True for ``targets=`` steps: the function returns a dict of outputs."""
    persist: bool = True
    capture_limit: int = CAPTURE_LIMIT
    timeout: float | None = None
    """Seconds the function may run; past it the call fails with ``timeout after N s``."""


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What a worker reports about one call."""

    key: str
    status: str
    """``ok`` or ``failed``."""
    records: dict[str, Any] = field(default_factory=dict)
    """Output name -> ArtifactRecord."""
    value: Any = None
    """The returned value for ``persist=False`` steps."""
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    started: float = 0.0
    finished: float = 0.0
    host: str = ""
    pid: int = 0
    stdout: str = ""
    stderr: str = ""


class _Tail(io.TextIOBase):
    """Keeps the last ``limit`` characters written, and passes them on to ``echo`` so a
    notebook or terminal still shows what the step prints."""

    def __init__(self, limit: int, echo: Any = None) -> None:
        super().__init__()
        self.limit = limit
        self.echo = echo
        self.parts: list[str] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.echo is not None:
            self.echo.write(text)
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * self.limit:  # trim now and then: memory stays bounded
            kept = "".join(self.parts)[-self.limit :]
            self.parts, self.size = [kept], len(kept)
        return len(text)

    def flush(self) -> None:
        if self.echo is not None:
            self.echo.flush()

    def tail(self) -> str:
        return "".join(self.parts)[-self.limit :]


def run_call(spec: CallSpec, store: Any) -> CallOutcome:
    """Run one call; never raises for a failure of the step itself."""
    started = time.time()
    out = _Tail(spec.capture_limit, sys.stdout)
    err = _Tail(spec.capture_limit, sys.stderr)
    capture = threading.current_thread() is threading.main_thread()
    try:
        fn = _resolve(spec.function)
        kwargs = dict(spec.params)
        for name, source in spec.inputs.items():
            if isinstance(source, tuple):
                kwargs[name] = [_load(store, s) for s in source]
            else:
                kwargs[name] = _load(store, source)
        with _captured(out, err, capture), deadline(spec.timeout):
            result = fn(**kwargs)
        values = _split(spec, result)
        if not spec.persist:
            return _outcome(spec, "ok", started, out, err, value=result)
        records = {name: _write(spec, store, name, value) for name, value in values.items()}
        return _outcome(spec, "ok", started, out, err, records=records)
    except Exception as exc:
        return _outcome(
            spec,
            "failed",
            started,
            out,
            err,
            error_type=type(exc).__name__,
            error_message=str(exc) or type(exc).__name__,
            tb=traceback.format_exc(),
        )


def run_batch(tasks: Sequence[Any], store: Any) -> list[Any]:
    """Run several calls in one executor task, leaving each in the journal as it finishes.

    An item is a ``CallSpec`` or a ``(function, task)`` pair run as ``function(task, store)``
    (a spec datum). Each finished call with outputs is journaled at once, so killing this
    worker or the driver loses only the call in flight, not the calls finished before it.
    """
    from databacked.engine import journal

    outcomes = []
    for task in tasks:
        if isinstance(task, CallSpec):
            outcome = run_call(task, store)
            if task.persist:
                journal.write(store, outcome)
        else:
            fn, item, *limit = task
            started = time.time()
            try:
                with deadline(limit[0] if limit else None):
                    outcome = fn(item, store)
            except Exception as exc:  # one item's failure must not lose its neighbours
                outcome = CallOutcome(
                    key=getattr(item, "key", ""),
                    status="failed",
                    error_type=type(exc).__name__,
                    error_message=str(exc) or type(exc).__name__,
                    traceback=traceback.format_exc(),
                    started=started,
                    finished=time.time(),
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
            journal.write(store, outcome)
        outcomes.append(outcome)
    return outcomes


def can_time_out() -> bool:
    """Whether :func:`deadline` can stop a call here: only the main thread gets signals."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Stop the code inside after ``seconds`` with ``CallTimeout("timeout after N s")``.

    A real-time timer interrupts the call between Python instructions (a command run with
    ``subprocess`` is killed by ``subprocess.run`` when it is interrupted), so the worker
    process survives and goes on with the next call.
    """
    if not seconds or not can_time_out():
        yield
        return

    def expired(_signum: int, _frame: Any) -> None:
        raise CallTimeout(f"timeout after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _resolve(function: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(function):
        return getattr(function, "fn", function)
    module_name, _, qualname = function.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return getattr(obj, "fn", obj)


def _load(store: Any, source: InputSpec) -> Any:
    if source.path is None:
        return source.value
    from databacked.formats.registry import get_format, resolve_format

    fmt = get_format(source.format) if source.format else resolve_format(source.path)
    return fmt.read(store, source.path)


def _split(spec: CallSpec, result: Any) -> dict[str, Any]:
    if not spec.multi:
        return {next(iter(spec.outputs), "value"): result}
    names = set(spec.outputs)
    if not isinstance(result, dict) or set(result) != names:
        got = sorted(result) if isinstance(result, dict) else type(result).__name__
        raise TypeError(
            f"Step {spec.step!r} has targets {sorted(names)} and must return a dict with "
            f"exactly those keys; it returned {got}."
        )
    return result


def _write(spec: CallSpec, store: Any, name: str, value: Any) -> Any:
    from databacked.formats.registry import format_for_value, get_format, resolve_format

    out = spec.outputs[name]
    fmt_given = get_format(out.format) if out.format else None
    path = out.path
    if path is None:
        fmt = fmt_given or format_for_value(value)
        ext = fmt.extensions[0] if fmt.extensions else ""
        if ext and not ext.startswith("."):
            ext = "." + ext
        suffix = "" if name == "value" else f"-{name}"
        path = f"{OBJECTS}/{spec.step}/{spec.key}{suffix}{ext}"
    else:
        fmt = resolve_format(path, value, fmt_given)
    return fmt.write(value, store, path)


@contextlib.contextmanager
def _captured(out: _Tail, err: _Tail, enabled: bool) -> Any:
    # Redirecting sys.stdout is process-wide: only safe when no sibling threads run steps.
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield


def _outcome(
    spec: CallSpec,
    status: str,
    started: float,
    out: _Tail,
    err: _Tail,
    *,
    records: dict[str, Any] | None = None,
    value: Any = None,
    error_type: str = "",
    error_message: str = "",
    tb: str = "",
) -> CallOutcome:
    return CallOutcome(
        key=spec.key,
        status=status,
        records=records or {},
        value=value,
        error_type=error_type,
        error_message=error_message,
        traceback=tb,
        started=started,
        finished=time.time(),
        host=socket.gethostname(),
        pid=os.getpid(),
        stdout=out.tail(),
        stderr=err.tail(),
    )


__all__ = ["OBJECTS", "CallOutcome", "CallSpec", "InputSpec", "OutputSpec", "run_batch", "run_call"]
