"""``python -m databacked.worker``: run the calls of a tar read from stdin, answer a tar on stdout.

The process boundary of the ``subprocess`` executor, and the protocol an outside orchestrator
speaks (``docs/wire-protocol.md``). Exit code 0 whenever an answer was written -- a call that
failed is reported inside ``outcome.json`` -- and 2 with one line on stderr when the input
tar itself is malformed or hostile.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import time
import traceback
from typing import IO, Any

from databacked.errors import DatabackedError, ExecutorError, WireError
from databacked.executors.wire import (
    CALL,
    OUTCOME,
    PROTOCOL,
    Decoder,
    Encoder,
    Limits,
    encode_error,
    read_document,
    read_tar,
    resolve,
    write_tar,
)

CAPTURE_LIMIT = 64 * 1024


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


def serve(stream: IO[bytes], limits: Limits | None = None) -> bytes:
    """The answer tar for the call tar read from ``stream``; WireError for a bad input tar."""
    files = read_tar(stream, limits or Limits.from_env())
    call = read_document(files, CALL)
    items = call.get("items")
    if not isinstance(items, list) or not all(isinstance(i, list) for i in items):
        raise WireError(f"{CALL} must hold 'items': a list of argument lists.")
    allow_pickle = call.get("allow_pickle") is True
    decoder = Decoder(files, allow_pickle=allow_pickle)
    encoder = Encoder("values", allow_pickle=allow_pickle)
    limit = int(call.get("capture_limit") or CAPTURE_LIMIT)
    out, err = _Tee(limit, sys.stderr), _Tee(limit, sys.stderr)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    started = time.time()
    try:
        results = [_run_item(call.get("function"), args, decoder, encoder) for args in items]
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
    return write_tar(OUTCOME, outcome, members)


def _run_item(function: Any, args: list[Any], decoder: Decoder, encoder: Encoder) -> dict[str, Any]:
    """One item: decode its function and arguments, call, encode the result or the error."""
    try:
        try:
            fn = resolve(function) if isinstance(function, str) else decoder.decode(function)
            values = decoder.decode(args)
        except ImportError as exc:
            module = getattr(exc, "name", None) or str(exc)
            raise ExecutorError(
                f"The subprocess executor's worker cannot import the module {module!r} ({exc}); "
                "install it in the worker's environment or add its folder to PYTHONPATH."
            ) from exc
        if not callable(fn):
            raise ExecutorError(f"{function!r} named in {CALL} is not callable.")
        result = fn(*values)
        return {"ok": True, "value": encoder.encode(result)}
    except Exception as exc:
        return {"ok": False, "error": encode_error(exc, traceback.format_exc())}


def main() -> int:
    """Entry point: stdin tar in, stdout tar out; see the module docstring for exit codes."""
    # The answer owns file descriptor 1: whatever the step prints, from Python or from C
    # libraries, goes to stderr so it cannot corrupt the tar.
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        answer = serve(sys.stdin.buffer)
    except DatabackedError as exc:
        message = " ".join(str(exc).split())
        print(f"databacked.worker: {type(exc).__name__}: {message}", file=sys.stderr)
        return 2
    with os.fdopen(answer_fd, "wb") as out:
        out.write(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
