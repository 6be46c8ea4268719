"""The one redaction function: what never reaches a log line, a catalog row, a message or a page.

Configuration, stores, the catalog, executors, the worker, logs and the CLI all pass what
they show or record through :func:`redact`, so one rule decides what a secret is:

- a mapping key made of words like key, secret, token, password, passwd, credential,
  session, private or auth (``aws_secret_access_key``, ``sessionToken``, ``key``) has its
  value replaced by ``***``;
- a URL's password (``postgresql://user:pw@host``, ``redis://:pw@host``) becomes ``***``,
  and so do secret-looking query parameters (``?token=...``) and ``password=...`` pairs in
  free text (libpq connection strings).

>>> redact({"key": "AKIA", "endpoint_url": "http://u:pw@127.0.0.1:9000"})
{'key': '***', 'endpoint_url': 'http://u:***@127.0.0.1:9000'}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
SECRET_WORDS = (
    "key", "secret", "token", "password", "passwd", "pwd", "credential", "session", "private",
    "auth", "signature",
)  # fmt: skip
"""A key is secret when one of its words starts with one of these."""

_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# A match starts only at the start of a token, and quantifiers before a required literal are
# bounded: without both, a long word (a step printing 64 KiB of one token) made every scan
# quadratic, minutes for one call's log.
_URL_USERINFO = re.compile(
    r"(?<![a-zA-Z0-9+.-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{0,31}://)"
    r"(?P<user>[^:/@\s]{0,256}):(?P<pw>[^@/\s]{0,1024})@"
)
_QUOTED = re.compile(
    r"(?P<q>['\"])(?P<name>[^'\"]{1,64})(?P=q)(?P<sep>\s*:\s*b?)(?P<v>['\"])(?P<value>[^'\"]*)(?P=v)"
)
_HEADER = re.compile(r"(?m)(?<![\w-])(?P<name>[A-Za-z][\w-]{0,63}):(?P<value>[^\s:/][^\s]*)")
_PAIR = re.compile(r"(?<![\w.-])(?P<name>[A-Za-z_][\w.-]{0,255})(?P<sep>=)(?P<value>[^\s&;,'\"]+)")


def is_secret_key(name: Any) -> bool:
    """Whether a mapping key or parameter name names a secret (``aws_secret_access_key``)."""
    if not isinstance(name, str):
        return False
    words = [w.lower() for w in _WORDS.findall(name)] or [name.lower()]
    return any(w.startswith(SECRET_WORDS) for w in words)


def redact_text(text: str) -> str:
    """``text`` with URL passwords and ``secret=value`` pairs masked (non-text: unchanged)."""
    if not isinstance(text, str) or not text:
        return text
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _QUOTED.sub(  # 'password': 'x' in a printed dict or JSON
        lambda m: (
            m.group(0)
            if not is_secret_key(m["name"]) or not m["value"]
            else f"{m['q']}{m['name']}{m['q']}{m['sep']}{m['v']}{MASK}{m['v']}"
        ),
        text,
    )
    text = _HEADER.sub(  # x-amz-security-token:value, as HTTP libraries log headers
        lambda m: f"{m['name']}:{MASK}" if is_secret_key(m["name"]) else m.group(0), text
    )
    return _pairs(text)


def _pairs(text: str) -> str:
    # A value may hold pairs of its own (url=https://h/?token=...): look inside it too.
    return _PAIR.sub(
        lambda m: (
            f"{m['name']}={MASK}"
            if is_secret_key(m["name"])
            else f"{m['name']}={_pairs(m['value'])}"
        ),
        text,
    )


def redact(value: Any) -> Any:
    """``value`` with every secret masked: nested mappings, lists, tuples and strings.

    >>> redact("amqp://guest:guest@127.0.0.1:5672//")
    'amqp://guest:***@127.0.0.1:5672//'
    """
    if isinstance(value, Mapping):
        return {
            k: (MASK if is_secret_key(k) and v not in (None, "", {}, []) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    if hasattr(value, "get_secret_value"):  # pydantic SecretStr / SecretBytes
        return MASK
    return value


def public(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without its secret entries at all (nested too): what may travel to another
    machine, which brings credentials of its own (storage options on the wire)."""
    kept: dict[str, Any] = {}
    for key, value in options.items():
        if is_secret_key(key) or str(key).lower() in ("username", "user", "profile"):
            continue
        kept[key] = public(value) if isinstance(value, Mapping) else redact(value)
    return kept


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in every record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = redact(record.args)
            try:
                record.msg = record.getMessage()
            except (TypeError, ValueError):
                record.msg = str(record.msg)
            record.args = None
        record.msg = redact_text(str(record.msg))
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Add :class:`RedactingFilter` to the handlers of ``logger`` (root by default) and to
    logging's last-resort handler, once each: what an edge (CLI, worker) calls at start."""
    target = logger or logging.getLogger()
    handlers = [*target.handlers, logging.lastResort]
    for handler in handlers:
        if handler is not None and not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


__all__ = [
    "MASK",
    "SECRET_WORDS",
    "RedactingFilter",
    "install_log_filter",
    "is_secret_key",
    "public",
    "redact",
    "redact_text",
]
