"""A threaded fake HTTP server for plugin tests: the scaffolding, the fake API is yours.

Subclass :class:`FakeHttpServer`, implement :meth:`FakeHttpServer.answer` and start it::

    class FakeAcme(FakeHttpServer):
        def answer(self, request):
            return 200, {"Content-Type": "application/json"}, b'{"ok": true}'

    fake = FakeAcme().start()   # http://127.0.0.1:<port>, fake.url
    fake.inject(429, headers={"Retry-After": "0"}, path=r"/things$")  # the next matching call fails
    ...
    fake.stop()

The server listens on a free loopback port, serves each request on its own daemon thread,
records every request (:meth:`FakeHttpServer.record`) and answers injected faults before
:meth:`FakeHttpServer.answer` sees the request. A fault with a ``delay`` hangs the call
(until the delay passes or the server stops), which is how tests produce timeouts and kills.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

Reply = tuple[int, dict[str, str], bytes]
"""An answer: status, headers (``Content-Length`` is added), body."""


@dataclass
class Request:
    """One request as the fake received it."""

    method: str
    target: str
    """Path and query string as sent."""
    path: str
    query: dict[str, list[str]]
    headers: Message
    """Case-insensitive: ``headers["authorization"]``, ``headers.get("If-Match")``."""
    body: bytes


@dataclass
class Fault:
    """An injected answer for the next ``times`` requests that match."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    times: int = 1
    method: str | None = None
    path: str | None = None
    """A regular expression searched in the request path."""
    path_contains: str = ""
    """A text the request target (path and query) must contain."""
    delay: float = 0.0

    def matches(self, request: Request) -> bool:
        return (
            self.times > 0
            and (not self.method or self.method == request.method)
            and (not self.path or re.search(self.path, request.path) is not None)
            and self.path_contains in request.target
        )


class FakeHttpServer:
    """A fake API over real HTTP on 127.0.0.1; subclasses implement :meth:`answer`."""

    protocol_version = "HTTP/1.0"
    """``HTTP/1.1`` keeps connections alive between calls, as most real APIs do."""
    fault_content_type = "application/json"
    """The content type of injected faults unless :meth:`inject` is told otherwise."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.faults: list[Fault] = []
        self.requests: list[Any] = []
        self.server: ThreadingHTTPServer | None = None
        self.tls = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, ssl_context: ssl.SSLContext | None = None) -> Self:
        """Listen on a free loopback port (over TLS with ``ssl_context``) and serve in the background."""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
            self.tls = True
        threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"fake-{type(self).__name__}",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # releases the calls a delayed fault holds
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def port(self) -> int:
        assert self.server is not None, "start the fake first"
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:<port>``."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- faults ------------------------------------------------------------------------------------
    def inject(
        self,
        status: int,
        body: Any = None,
        *,
        method: str | None = None,
        path: str | None = None,
        path_contains: str = "",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        times: int = 1,
        content_type: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with this status and body (JSON unless
        ``str``/``bytes``); ``path`` is a regular expression, ``path_contains`` a plain text."""
        if body is None:
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = json.dumps(body).encode()
        fault = Fault(
            status,
            raw,
            headers or {},
            content_type or self.fault_content_type,
            times,
            method,
            path,
            path_contains,
            delay,
        )
        with self.lock:
            self.faults.append(fault)

    # -- serving -----------------------------------------------------------------------------------
    def record(self, request: Request) -> None:
        """Keep a request in :attr:`requests` (override to keep something else)."""
        self.requests.append(request)

    def answer(self, request: Request) -> Reply | None:
        """The fake API: the reply to a request (``None`` drops the connection unanswered)."""
        raise NotImplementedError

    def dispatch(self, request: Request) -> Reply | None:
        with self.lock:
            self.record(request)
            fault = next((f for f in self.faults if f.matches(request)), None)
            if fault is not None:
                fault.times -= 1
        if fault is None:
            return self.answer(request)
        if fault.delay and self.stopping.wait(fault.delay):
            return None  # stopped while hanging: leave the call unanswered
        return fault.status, {"Content-Type": fault.content_type, **fault.headers}, fault.body


def _handler(fake: FakeHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = fake.protocol_version

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            reply = fake.dispatch(Request(self.command, self.path, url.path, query, self.headers, body))
            if reply is None:
                self.close_connection = True
                return
            status, headers, payload = reply
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout, kill)
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


def closed_port() -> int:
    """A loopback port nothing listens on, for "cannot reach" tests."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed_tls(folder: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1, written to ``folder``.

    Pass it to :meth:`FakeHttpServer.start`; clients that verify certificates refuse it, which
    is what TLS tests want. Needs the ``cryptography`` package.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return ctx
