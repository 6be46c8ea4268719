"""The UI's front door: Host allow-list, GET/HEAD only, token login, headers on every answer.

One ASGI middleware, outermost, so that even a 400, 404 or 405 carries the headers:

- a Host header not in the allow-list is a 400 (DNS rebinding: a page on evil.example that
  resolves to 127.0.0.1 still sends ``Host: evil.example``);
- any method but GET and HEAD is a 405: the UI is read-only;
- with a token, a request needs the session cookie, a ``Bearer`` header, or ``?token=`` once,
  which is exchanged for an HttpOnly SameSite=Strict cookie and a redirect without it;
- every response gets ``Content-Security-Policy`` (``default-src 'self'``) and ``nosniff``.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "databacked_ui"
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: binds that other machines cannot reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> set[str]:
    """Host names a browser may use to reach a server bound to ``bind``."""
    names = {*LOOPBACK_NAMES, *(e.lower() for e in extra)}
    if bind in ("0.0.0.0", "::", ""):  # noqa: S104 - we are naming the wildcard, not binding it
        hostname = socket.gethostname()
        names |= {hostname.lower(), socket.getfqdn().lower()}
        with contextlib.suppress(OSError):
            names |= {str(info[4][0]) for info in socket.getaddrinfo(hostname, None)}
    else:
        names.add(bind.lower().strip("[]"))
    return names


def host_name(header: str) -> str:
    """The name part of a Host header: ``[::1]:8765`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """The middleware (see the module docstring); ``token=None`` means loopback, no login."""

    def __init__(self, app: ASGIApp, *, hosts: set[str], token: str | None) -> None:
        self.app = app
        self.hosts = hosts
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The app's own CSP (``sandbox`` on artifact bytes) stays: browsers enforce both.
                ours = {k for k, _ in HEADERS if k != b"content-security-policy"}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in ours]
                message["headers"] = kept + HEADERS
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if host_name(headers.get("host", "")) not in self.hosts:
            await _plain(send_with_headers, 400, "Bad Host header: not a name of this server.")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(
                send_with_headers,
                405,
                "The databacked UI is read-only.",
                [(b"allow", b"GET, HEAD")],
            )
            return
        if self.token is not None and not self._authorised(headers):
            given = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if "token" in given and _same(given["token"], self.token):
                await self._login(scope, given, send_with_headers)
                return
            await _plain(
                send_with_headers,
                401,
                "Log in with the URL databacked ui printed (it ends in ?token=...).",
            )
            return
        if scope["method"] == "HEAD":
            # Routes are declared for GET; HEAD is GET without the body (RFC 9110).
            scope = {**scope, "method": "GET"}
            await self.app(scope, receive, _without_body(send_with_headers))
            return
        await self.app(scope, receive, send_with_headers)

    def _authorised(self, headers: dict[str, str]) -> bool:
        assert self.token is not None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is no login
            return False
        if COOKIE in cookie and _same(cookie[COOKIE].value, self.token):
            return True
        auth = headers.get("authorization", "")
        return auth.startswith("Bearer ") and _same(auth[7:].strip(), self.token)

    async def _login(self, scope: Scope, given: dict[str, str], send: Send) -> None:
        """Swap ``?token=`` for the cookie and redirect to the same page without it."""
        assert self.token is not None
        rest = urlencode([(k, v) for k, v in given.items() if k != "token"])
        # Quoted: a decoded path may hold CR/LF or non-Latin-1 text, never fit for a header.
        location = quote(scope.get("path", "/"), safe="/") + (f"?{rest}" if rest else "")
        if not location.startswith("/") or location.startswith("//"):
            location = "/"
        cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        await _plain(
            send,
            303,
            "Logged in.",
            [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode())],
        )


def _same(given: str, token: str) -> bool:
    """Constant-time comparison that accepts any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


def _without_body(send: Send) -> Send:
    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body"):
                return
            message = {"type": "http.response.body", "body": b""}
        await send(message)

    return send_head


async def _plain(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


__all__ = ["COOKIE", "CSP", "Guard", "allowed_hosts", "host_name", "is_loopback", "new_token"]
