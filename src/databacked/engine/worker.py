"""Run one call: load inputs, call the function, write outputs. The only code executors run.

A worker gets the store, never the catalog: it returns a ``CallOutcome`` and the driver
records it. Everything here travels between processes, so it is frozen and picklable.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from databacked.errors import CallTimeout

OBJECTS = ".databacked/objects"
"""Where outputs without a target live, relative to the store root."""
CAPTURE_LIMIT = 64 * 1024
HARD_STOP_GRACE = 2.0
"""Seconds past its timeout that a call stuck in C code (where the timer's exception cannot
reach it) gets before its worker process exits; see :func:`deadline`."""


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
    log: str = ""
    """Tail of stdout, stderr and ``logging`` records in order (whole log in the store)."""


def run_call(spec: CallSpec, store: Any, journal_id: str | None = None) -> CallOutcome:
    """Run one call; never raises for a failure of the step itself.

    What the call prints and logs (``logging``) is its log: the whole of it goes to the
    store (``.databacked/logs/<key>.log``), its tail into the outcome for the catalog.
    ``journal_id`` (the driver run's journal) is where a timeout is noted before a stuck
    call's worker exits (see :func:`deadline`).
    """
    from databacked.engine import capture

    with capture.capturing(spec.capture_limit, label=f"[{spec.step} {spec.key[:8]}] ") as log:
        outcome = _attempt(spec, store, log, journal_id)
    text = log.text()
    if not text:
        return outcome
    capture.keep(store, spec.key, text)
    return replace(outcome, log=text[-spec.capture_limit :])


def _attempt(spec: CallSpec, store: Any, log: Any, journal_id: str | None) -> CallOutcome:
    started = time.time()
    try:
        fn = _resolve(spec.function)
        kwargs = dict(spec.params)
        for name, source in spec.inputs.items():
            if isinstance(source, tuple):
                kwargs[name] = [_load(store, s) for s in source]
            else:
                kwargs[name] = _load(store, source)
        with deadline(spec.timeout, note=_noting(store, spec.key, started, journal_id)):
            result = fn(**kwargs)
        values = _split(spec, result)
        if not spec.persist:
            return _outcome(spec, "ok", started, log, value=result)
        records = {name: _write(spec, store, name, value) for name, value in values.items()}
        return _outcome(spec, "ok", started, log, records=records)
    except Exception as exc:
        if isinstance(exc, CallTimeout):
            logging.getLogger("databacked.worker").error("%s: %s", spec.step, exc)
        return _outcome(
            spec,
            "failed",
            started,
            log,
            error_type=type(exc).__name__,
            error_message=str(exc) or type(exc).__name__,
            tb=user_traceback(exc),
        )


DYNAMIC = "<dynamic-code>"
"""The file name cloudpickle gives functions it ships by value (a FILE.py, a notebook)."""


def user_traceback(exc: BaseException) -> str:
    """The traceback text with the user's file and line where cloudpickle left
    ``<dynamic-code>``: a by-value function keeps its module's ``__file__`` in its globals."""
    te = traceback.TracebackException.from_exception(exc, lookup_lines=False)
    pending: list[tuple[Any, BaseException | None]] = [(te, exc)]
    while pending:
        current, error = pending.pop()
        if current is None or error is None:
            continue
        frames = [frame for frame, _ in traceback.walk_tb(error.__traceback__)]
        for summary, frame in zip(current.stack, frames, strict=False):
            if summary.filename == DYNAMIC:
                real = frame.f_globals.get("__file__")
                if isinstance(real, str):
                    summary.filename = real
        pending.append((current.__cause__, error.__cause__))
        pending.append((current.__context__, error.__context__))
    return "".join(te.format())


def run_batch(tasks: Sequence[Any], store: Any, journal_id: str | None = None) -> list[Any]:
    """Run several calls in one executor task, leaving each in the journal as it finishes.

    An item is a ``CallSpec`` or a ``(function, task)`` pair run as ``function(task, store)``
    (a spec datum). Each finished call with outputs is journaled at once, so killing this
    worker or the driver loses only the call in flight, not the calls finished before it
    (``journal_id``: the driver run's journal folder; None keeps no journal).
    """
    from databacked.engine import capture, journal

    outcomes = []
    with capture.session():  # logging is set up once for the batch, not once per call
        for task in tasks:
            if isinstance(task, CallSpec):
                outcome = run_call(task, store, journal_id)
            else:
                outcome = _run_item(task, store, journal_id)
            journal.write(store, outcome, journal_id)  # what it keeps: see journal.write
            outcomes.append(outcome)
    return outcomes


def _run_item(task: tuple[Any, ...], store: Any, journal_id: str | None = None) -> CallOutcome:
    """A ``(function, task[, timeout])`` item (a spec datum), as a ``CallOutcome`` with its
    log: what it printed and logged, and the output its command or function produced."""
    from databacked.engine import capture

    fn, item, *limit = task
    key = str(getattr(item, "key", ""))
    started = time.time()
    note = _noting(store, key, started, journal_id)
    with capture.capturing() as log:
        try:
            with deadline(limit[0] if limit else None, note=note):
                done = fn(item, store)
        except Exception as exc:  # one item's failure must not lose its neighbours
            done = CallOutcome(
                key=key,
                status="failed",
                error_type=type(exc).__name__,
                error_message=str(exc) or type(exc).__name__,
                traceback=traceback.format_exc(),
                started=started,
                finished=time.time(),
            )
    fields = {f: getattr(done, f) for f in _OUTCOME_FIELDS if hasattr(done, f)}
    text = log.text()
    for name in ("stdout", "stderr"):  # a command's output, captured by the transform itself
        own = fields.get(name) or ""
        if own and own not in text:
            text += f"--- {name} ---\n{own}" + ("" if own.endswith("\n") else "\n")
    capture.keep(store, key, text)
    return CallOutcome(
        **{**fields, "host": socket.gethostname(), "pid": os.getpid(), "log": text[-CAPTURE_LIMIT:]}
    )


_OUTCOME_FIELDS = (
    "key", "status", "records", "error_type", "error_message", "traceback", "started",
    "finished", "stdout", "stderr",
)  # fmt: skip


def can_time_out() -> bool:
    """Whether :func:`deadline` can stop a call here: only the main thread gets signals."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deadline(seconds: float | None, note: Callable[[float], None] | None = None) -> Iterator[None]:
    """Stop the code inside after ``seconds`` with ``CallTimeout("timeout after N s")``.

    A real-time timer interrupts the call between Python instructions (a command run with
    ``subprocess`` is killed by ``subprocess.run`` when it is interrupted), so the worker
    process survives and goes on with the next call. Code stuck in C (a long computation in
    an extension, a blocking call that retries when interrupted) never returns to Python to
    be interrupted: in a worker process an executor can lose (``executors.is_disposable``:
    ``processes``, ``subprocess``), ``note(seconds)`` first leaves the timeout where the
    driver finds it (the journal), then a watchdog outside Python (``faulthandler``, which
    needs no GIL and prints where the call was stuck) ends the process
    ``HARD_STOP_GRACE`` seconds past the timeout. The driver reports the call as failed with
    the timeout's reason, and reruns only the calls that process had not finished.
    """
    if not seconds or not can_time_out():
        yield
        return

    def expired(_signum: int, _frame: Any) -> None:
        raise CallTimeout(f"timeout after {seconds:g} s")

    hard = note is not None and _hard_stop_armed(seconds, note)
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if hard:
            faulthandler.cancel_dump_traceback_later()


def _hard_stop_armed(seconds: float, note: Callable[[float], None]) -> bool:
    from databacked.executors.base import is_disposable

    stream = sys.__stderr__
    if not is_disposable() or stream is None:
        return False  # never in a driver: it would end the run itself
    try:
        note(seconds)
        faulthandler.dump_traceback_later(seconds + HARD_STOP_GRACE, exit=True, file=stream)
    except (OSError, ValueError) as exc:  # no usable stderr: the timer alone must do
        logging.getLogger("databacked.worker").debug("no hard stop for this call: %s", exc)
        return False
    return True


def _noting(
    store: Any, key: str, started: float, journal_id: str | None
) -> Callable[[float], None] | None:
    """What :func:`deadline` calls to leave a timeout in the run's journal, if it has one."""
    if not journal_id or not key:
        return None

    def note(seconds: float) -> None:
        from databacked.engine import journal

        journal.expect_timeout(store, journal_id, key, started, seconds)

    return note


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


def _outcome(
    spec: CallSpec,
    status: str,
    started: float,
    log: Any,
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
        stdout=log.stream("stdout"),
        stderr=log.stream("stderr"),
    )


__all__ = ["OBJECTS", "CallOutcome", "CallSpec", "InputSpec", "OutputSpec", "run_batch", "run_call"]
