"""Calls for workers in other processes or machines: one wire tar out, one answer tar back.

The subprocess and Celery executors both speak this; the tar format itself is ``wire.py``.
"""

from __future__ import annotations

import io
from typing import Any

from databacked.errors import WireError
from databacked.executors.signing import check_signature
from databacked.executors.wire import (
    CALL,
    OUTCOME,
    PROTOCOL,
    Decoder,
    Encoder,
    Limits,
    decode_error,
    read_document,
    read_tar,
    write_tar,
)


def encode_call(
    fn: Any,
    items: Any,
    *,
    allow_pickle: bool = False,
    capture_limit: int = 64 * 1024,
    key: bytes | None = None,
    modules: set[str] | None = None,
) -> bytes:
    """The call tar for ``fn`` over ``items`` (argument lists); WireError if it cannot go.

    Signed when ``key`` is given; ``modules``, when given, receives the modules the call
    names by reference (what its worker must be allowed to import).
    """
    encoder = Encoder("params", allow_pickle=allow_pickle)
    try:
        function: Any = encoder._reference(fn)
    except WireError:
        if not allow_pickle:
            raise
        function = encoder.encode(fn)  # lands in a pickle member
    call = {
        "protocol": PROTOCOL,
        "function": function,
        "items": [[encoder.encode(a) for a in args] for args in items],
        "allow_pickle": allow_pickle,
        "capture_limit": capture_limit,
    }
    if modules is not None:
        modules.update(encoder.modules)
    return write_tar(CALL, call, encoder.members, key=key)


def decode_answer(
    answer: bytes,
    *,
    limits: Limits | None,
    allow_pickle: bool,
    executor: str,
    key: bytes | None = None,
) -> list[tuple[bool, Any, str]]:
    """(ok, value or exception, worker traceback) per item of an answer tar; with ``key``,
    an answer without the right signature is refused."""
    from databacked.errors import ExecutorError

    try:
        files = read_tar(io.BytesIO(answer), limits)
        check_signature(files, key, f"{executor} worker's answer")
        outcome = read_document(files, OUTCOME)
        decoder = Decoder(files, allow_pickle=allow_pickle)
        results = []
        for item in outcome["results"]:
            if item.get("ok"):
                results.append((True, decoder.decode(item.get("value")), ""))
            else:
                error = item.get("error") or {}
                exc = decode_error(error, ExecutorError)
                results.append((False, exc, str(error.get("traceback", ""))))
    except (WireError, KeyError, TypeError) as exc:
        raise ExecutorError(
            f"The {executor} executor could not read the worker's answer: {exc}"
        ) from exc
    return results


__all__ = ["decode_answer", "encode_call"]
