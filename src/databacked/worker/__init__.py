"""``python -m databacked.worker``: run the calls of a tar read from stdin, answer a tar on stdout.

The process boundary of the ``subprocess`` executor, the body of ``databacked worker``'s
Celery tasks, and the protocol an outside orchestrator speaks (``docs/wire-protocol.md``).

The worker, not the message, decides what runs (DESIGN section 11): a message may name only
databacked's own entry points, which run only ``@db.step`` objects and the transforms that
the project's specs name, from modules the worker may import (``--import``, ``[worker]
imports``, the project folder it started in, databacked itself). Pickle only when the worker
was started with ``--allow-pickle``; with a key (``DATABACKED_WORKER_KEY`` or ``[worker]
key``) only messages signed with it. A refused message runs nothing; it is answered with one
sentence, and the worker goes on serving. Exit code 0 whenever an answer was written -- a
call that failed is reported inside ``outcome.json`` -- and 2 with one line on stderr when
the input tar is malformed, hostile or refused.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

from databacked.errors import DatabackedError, ExecutorError, RefusedMessage, WireError
from databacked.executors.base import mark_disposable
from databacked.executors.signing import check_signature
from databacked.executors.wire import (
    CALL,
    OUTCOME,
    PROTOCOL,
    TAG,
    Decoder,
    Encoder,
    Limits,
    encode_error,
    read_document,
    read_tar,
    write_tar,
)
from databacked.secrets import install_log_filter
from databacked.worker.gate import ENTRY_POINTS, Gate, WorkerPolicy

CAPTURE_LIMIT = 64 * 1024
log = logging.getLogger("databacked.worker")

_POLICY: dict[str, WorkerPolicy] = {}


def configure(policy: WorkerPolicy) -> None:
    """Set the policy of this process (``databacked worker`` does, before its pool forks)."""
    _POLICY["current"] = policy
    if policy.project is not None and str(policy.project) not in sys.path:
        sys.path.insert(0, str(policy.project))  # the project's modules are importable


def current_policy() -> WorkerPolicy:
    """The configured policy, else the strict default: project = working folder, imports and
    key from ``[worker]`` settings and ``DATABACKED_WORKER_KEY``, no pickle."""
    if "current" not in _POLICY:
        configure(WorkerPolicy.from_settings())
    return _POLICY["current"]


class _Tee(io.TextIOBase):
    """Keeps the last ``limit`` characters written and passes everything on to ``echo``."""

    def __init__(self, limit: int, echo: IO[str]) -> None:
        super().__init__()
        self.limit, self.echo, self.text = limit, echo, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.echo.write(text)
        self.text = (self.text + text)[-self.limit :]
        return len(text)

    def flush(self) -> None:
        self.echo.flush()


def serve(
    stream: IO[bytes], limits: Limits | None = None, policy: WorkerPolicy | None = None
) -> bytes:
    """The answer tar for the call tar read from ``stream``.

    WireError for a bad input tar, RefusedMessage (one of them) for a message this worker
    will not run: in both cases nothing of the message ran.
    """
    policy = policy or current_policy()
    files = read_tar(stream, limits or Limits.from_env())
    check_signature(files, policy.key, "call")
    call = read_document(files, CALL)
    items = call.get("items")
    if not isinstance(items, list) or not all(isinstance(i, list) for i in items):
        raise WireError(f"{CALL} must hold 'items': a list of argument lists.")
    if not policy.allow_pickle and _has_pickle(call):
        raise RefusedMessage(
            "The call holds a pickled value and this worker was not started with "
            "--allow-pickle; send values in safe formats (JSON, .npy, Parquet)."
        )
    gate = Gate(policy)
    decoder = Decoder(files, allow_pickle=policy.allow_pickle, resolver=gate.resolve)
    prepared = _prepare(call.get("function"), items, gate, decoder)
    pickle_back = policy.allow_pickle and call.get("allow_pickle") is True
    encoder = Encoder("values", allow_pickle=pickle_back)
    limit = int(call.get("capture_limit") or CAPTURE_LIMIT)
    out, err = _Tee(limit, sys.stderr), _Tee(limit, sys.stderr)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    started = time.time()
    try:
        results = [_run_item(item, encoder) for item in prepared]
    finally:
        sys.stdout, sys.stderr = saved
    outcome = {
        "protocol": PROTOCOL,
        "results": results,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": started,
        "finished": time.time(),
    }
    members = dict(encoder.members)
    members["logs/stdout.txt"] = out.text.encode("utf-8", "replace")
    members["logs/stderr.txt"] = err.text.encode("utf-8", "replace")
    return write_tar(OUTCOME, outcome, members, key=policy.key)


def _has_pickle(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_pickle(v) for v in value)
    if isinstance(value, dict):
        return value.get(TAG) == "pickle" or any(_has_pickle(v) for v in value.values())
    return False


def _prepare(
    function: Any, items: list[list[Any]], gate: Gate, decoder: Decoder
) -> list[tuple[Any, Any]]:
    """(function, arguments) or (None, error) per item, every reference checked by the gate
    before anything runs: one refused reference refuses the whole message."""
    try:
        fn: Any = gate.function(function, decoder)
    except WireError:  # refused, or malformed: the whole message, before anything runs
        raise
    except Exception as exc:
        fn = _import_failure(exc, function)
    prepared: list[tuple[Any, Any]] = []
    for args in items:
        if isinstance(fn, BaseException):
            prepared.append((None, fn))
            continue
        try:
            values = decoder.decode(args)
            gate.check_arguments(values)
            prepared.append((fn, values))
        except WireError:
            raise
        except Exception as exc:
            prepared.append((None, _import_failure(exc, function)))
    return prepared


def _import_failure(exc: Exception, function: Any) -> BaseException:
    if isinstance(exc, ImportError):
        module = getattr(exc, "name", None) or str(exc)
        failure = ExecutorError(
            f"The subprocess executor's worker cannot import the module {module!r} ({exc}); "
            "install it in the worker's environment or add its folder to PYTHONPATH."
        )
        failure.__cause__ = exc
        return failure
    if isinstance(exc, AttributeError):
        return ExecutorError(f"{function!r} named in {CALL} does not exist in its module ({exc}).")
    return exc


def _run_item(item: tuple[Any, Any], encoder: Encoder) -> dict[str, Any]:
    """One item: call and encode the result, or encode the error."""
    fn, values = item
    try:
        if fn is None:
            raise values
        result = fn(*values)
        return {"ok": True, "value": encoder.encode(result)}
    except Exception as exc:
        return {"ok": False, "error": encode_error(exc, traceback.format_exc())}


def refusal(exc: DatabackedError) -> str:
    """The one line a refused or malformed message is answered with (and logged as)."""
    return " ".join(str(exc).split())


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m databacked.worker",
        description="Run the calls of a wire tar read from stdin; answer a tar on stdout.",
    )
    parser.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="A module (with its submodules) whose steps and transforms may run; repeatable.",
    )  # fmt: skip
    parser.add_argument(
        "--allow-pickle", action="store_true",
        help="Accept pickled values and functions: anyone who can send a message runs code.",
    )  # fmt: skip
    parser.add_argument(
        "--project", type=Path, default=None,
        help="The project folder (default: the working folder): its modules and specs.",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: stdin tar in, stdout tar out; see the module docstring for exit codes."""
    options = _arguments(argv)
    install_log_filter()
    mark_disposable()  # this process serves one task: a call stuck past its timeout may end it
    # The answer owns file descriptor 1: whatever the step prints, from Python or from C
    # libraries, goes to stderr so it cannot corrupt the tar.
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        configure(
            WorkerPolicy.from_settings(
                imports=options.imports,
                project=options.project,
                allow_pickle=options.allow_pickle,
            )
        )
        answer = serve(sys.stdin.buffer)
    except DatabackedError as exc:
        word = "refused" if isinstance(exc, RefusedMessage) else type(exc).__name__
        print(f"databacked.worker: {word}: {refusal(exc)}", file=sys.stderr)
        return 2
    with os.fdopen(answer_fd, "wb") as out:
        out.write(answer)
    return 0


__all__ = ["ENTRY_POINTS", "WorkerPolicy", "configure", "current_policy", "main", "serve"]
