"""An HTTP proxy on loopback that breaks a share of S3 requests on their way to moto.

Faults, chosen by a seeded random generator once ``armed``: a 500 InternalError, a 503
SlowDown, a connection reset before any answer, and a response body cut short after its
headers promised more (GET only). Every other request is forwarded unchanged.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = ("500", "slowdown", "reset", "truncate")
_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>fault</RequestId></Error>"
)


class FaultProxy:
    """Forward to ``upstream``; break about ``rate`` of requests once ``armed``."""

    def __init__(self, upstream: str, rate: float = 0.2, seed: int = 0) -> None:
        self.upstream = urlsplit(upstream)
        self.rate = rate
        self.random = random.Random(seed)
        self.armed = False
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._lock = threading.Lock()

    def choose(self, method: str) -> str | None:
        with self._lock:
            self.requests += 1
            if not self.armed or self.random.random() >= self.rate:
                return None
            kinds = FAULTS if method == "GET" else FAULTS[:3]
            fault = self.random.choice(kinds)
            self.injected[fault] += 1
            return fault


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _error(self, status: int, code: str) -> None:
            body = _XML.format(code=code, message="injected by the fault proxy").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            body = self._body()
            fault = proxy.choose(self.command)
            if fault == "500":
                return self._error(500, "InternalError")
            if fault == "slowdown":
                return self._error(503, "SlowDown")
            if fault == "reset":
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                return None
            up = proxy.upstream
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            conn.close()
            self.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            if fault == "truncate" and len(data) > 1:
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return None
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return None

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


@contextmanager
def fault_proxy(
    upstream: str, rate: float = 0.2, seed: int = 0
) -> Iterator[tuple[str, FaultProxy]]:
    """``(url, proxy)`` of a proxy on 127.0.0.1 in front of ``upstream``."""
    proxy = FaultProxy(upstream, rate, seed)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", proxy
    finally:
        server.shutdown()
        server.server_close()
