"""HMAC signatures on wire tars, so a worker can tell its driver's messages from a stranger's.

With a shared key (``DATABACKED_WORKER_KEY``, or ``[worker] key`` in databacked.toml) on both
sides, every call tar and every answer tar carries a member ``signature``: HMAC-SHA256 over
the name and bytes of every other member, length-prefixed in name order. The tar's headers
(times, modes) are not covered: the protocol gives them no meaning. A reader holding a key
refuses a tar whose signature is missing or wrong before it decodes anything in it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from databacked.errors import ConfigError, RefusedMessage

SIGNATURE = "signature"
"""Name of the member holding ``hmac-sha256:<hex>``."""
KEY_VARIABLE = "DATABACKED_WORKER_KEY"
_SCHEME = "hmac-sha256:"


def worker_key(
    given: str | bytes | None = None, environ: Mapping[str, str] = os.environ
) -> bytes | None:
    """The shared key: ``given``, else ``DATABACKED_WORKER_KEY``, else None (no signing)."""
    value = given if given is not None else environ.get(KEY_VARIABLE)
    if value is None or value == "":
        return None
    key = value.encode() if isinstance(value, str) else bytes(value)
    if len(key) < 16:
        raise ConfigError(
            f"The worker key ({KEY_VARIABLE} or [worker] key) is {len(key)} bytes long; use at "
            "least 16 random bytes, e.g. the output of `python -c 'import secrets; "
            "print(secrets.token_hex(32))'`."
        )
    return key


def signature(members: Mapping[str, bytes], key: bytes) -> bytes:
    """The ``signature`` member's bytes for ``members`` (every member but the signature)."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for name in sorted(members):
        if name == SIGNATURE:
            continue
        encoded = name.encode()
        data = members[name]
        mac.update(len(encoded).to_bytes(8, "big") + encoded + len(data).to_bytes(8, "big"))
        mac.update(data)
    return (_SCHEME + mac.hexdigest()).encode()


def check_signature(members: Mapping[str, bytes], key: bytes | None, what: str) -> None:
    """Nothing when ``key`` is None or the signature matches; RefusedMessage otherwise."""
    if key is None:
        return
    given = members.get(SIGNATURE)
    if given is None:
        raise RefusedMessage(
            f"The {what} is not signed but a worker key is set; set the same "
            f"{KEY_VARIABLE} (or [worker] key) on the driver and the workers."
        )
    if not hmac.compare_digest(given, signature(members, key)):
        raise RefusedMessage(
            f"The {what} has a wrong signature (another key, or altered in transit); set the "
            f"same {KEY_VARIABLE} (or [worker] key) on the driver and the workers."
        )


__all__ = ["KEY_VARIABLE", "SIGNATURE", "check_signature", "signature", "worker_key"]
