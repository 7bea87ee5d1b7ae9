"""A loopback HTTP proxy in front of the real NetBox that can inject faults.

It forwards every request to NetBox unchanged, except when a fault is queued: an HTTP
429 with ``Retry-After``, a non-JSON body (a login page from a misrouted URL), or a
request that hangs (NetBox never answers). The tasks reach it through the same
client code users run; nothing in the client is patched.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
}


class FaultProxy:
    def __init__(self, upstream: str, tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.faults: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    proxy.seen.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": {
                                k.lower(): v for k, v in self.headers.items()
                            },  # names are case-blind
                        }
                    )
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault is not None:
                    return self.inject(fault)
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for key, value in resp.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def inject(self, fault: dict[str, Any]) -> None:
                kind = fault["kind"]
                if kind == "hang":
                    proxy.release.wait(fault.get("seconds", 30))
                    self.close_connection = True
                    return
                if kind == "429":
                    data = b'{"detail": "Request was throttled."}'
                    self.send_response(429, "Too Many Requests")
                    self.send_header("Retry-After", str(fault.get("retry_after", 1)))
                    self.send_header("Content-Type", "application/json")
                elif kind == "garbage":
                    data = b"<html><body>Please log in</body></html>"
                    self.send_response(200, "OK")
                    self.send_header("Content-Type", "text/html")
                else:  # pragma: no cover - test bug
                    raise ValueError(kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:  # HTTPS in front of NetBox, with the given (self-signed) certificate
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def add(self, kind: str, times: int = 1, **opts: Any) -> None:
        with self.lock:
            self.faults.extend({"kind": kind, **opts} for _ in range(times))

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
