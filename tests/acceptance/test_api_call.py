"""Acceptance: the seed's ``api_call`` flow, unmodified, calling ``https://api.example.com/v1/ping``
with a Bearer token from ``credential('my_oauth')``.

Stand-ins, all on loopback and none touching the flow:

- the OAuth2 token endpoint behind ``my_oauth`` is :class:`FakeAuthorizationServer` (RFC 6749), and
  ``my_oauth`` is configured as an ``oauth2_client_credentials`` credential in a server configuration
  file, its client secret a ``{{ secret('...') }}`` reference to the environment secret backend;
- ``api.example.com`` is an HTTPS server whose certificate a test CA signed, reached through an HTTP
  CONNECT proxy: ``HTTPS_PROXY`` points at the proxy and ``SSL_CERT_FILE`` at the CA, so the HTTP
  Request task's real client (httpx, proxy and TLS verification included) does the call.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from roost.credentials.testing import FakeAuthorizationServer
from roost.engine.engine import Engine
from roost.store.db import Store

FLOWS = Path(__file__).resolve().parent / "flows"
API_HOST = "api.example.com"
CLIENT_SECRET = "api-call-client-secret"


# -- a test CA and a certificate for api.example.com -------------------------------------------------
def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(folder: Path, hostname: str) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) as PEM files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Roost test CA"))
        .issuer_name(_name("Roost test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hostname))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return ca_file, cert_file, key_file


# -- api.example.com ---------------------------------------------------------------------------------
class ApiServer:
    """``GET /v1/ping`` over HTTPS; answers 200 to a Bearer token the authorization server issued."""

    def __init__(self, cert: Path, key: Path, auth: FakeAuthorizationServer) -> None:
        self.calls: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                authorization = self.headers.get("Authorization") or ""
                token = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else ""
                ok = self.path == "/v1/ping" and auth.valid(token) is not None
                api.calls.append(
                    {"path": self.path, "host": self.headers.get("Host"), "authorization": authorization}
                )
                body = json.dumps({"pong": True} if ok else {"message": "unauthorized"}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- an HTTP CONNECT proxy that knows only api.example.com -------------------------------------------
class ConnectProxy:
    """Tunnels ``CONNECT host:port`` to the loopback servers in ``routes``; refuses anything else."""

    def __init__(self, routes: dict[str, tuple[str, int]]) -> None:
        self.tunnels: list[str] = []
        self.refused: list[str] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                client: socket.socket = self.request
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = client.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
                route = routes.get(target) if method == "CONNECT" else None
                if route is None:
                    proxy.refused.append(f"{method} {target}")
                    client.sendall(
                        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    return
                proxy.tunnels.append(target)
                with socket.create_connection(route, timeout=10) as upstream:
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    rest = head.split(b"\r\n\r\n", 1)[1]
                    if rest:
                        upstream.sendall(rest)
                    pipe(client, upstream)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pipe(a: socket.socket, b: socket.socket) -> None:
    """Relay bytes both ways until one side closes."""
    sockets = [a, b]
    while True:
        readable, _, broken = select.select(sockets, [], sockets, 10)
        if broken or not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)


# -- the test ----------------------------------------------------------------------------------------
@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    ca, cert, key = make_certificates(tmp_path, API_HOST)
    with FakeAuthorizationServer(expires_in=3600) as auth:
        auth.add_client("roost-api-call", CLIENT_SECRET, scopes=["ping"])
        api = ApiServer(cert, key, auth)
        proxy = ConnectProxy({f"{API_HOST}:443": ("127.0.0.1", api.port)})
        for var in (
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
            "SSL_CERT_DIR",
        ):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the token endpoint is reached directly
        monkeypatch.setenv("SECRET_MY_OAUTH_CLIENT_SECRET", base64.b64encode(CLIENT_SECRET.encode()).decode())
        try:
            yield {"auth": auth, "api": api, "proxy": proxy}
        finally:
            proxy.stop()
            api.stop()


def test_api_call(stand_ins: dict[str, Any], tmp_path: Path) -> None:
    from roost.plugins import Plugins
    from roost.server.config import load_config

    auth, api, proxy = stand_ins["auth"], stand_ins["api"], stand_ins["proxy"]
    config_file = tmp_path / "roost.yaml"
    config_file.write_text(
        "credentials:\n"
        "  my_oauth:\n"
        "    type: oauth2_client_credentials\n"
        f"    tokenUrl: {auth.token_url}\n"
        "    clientId: roost-api-call\n"
        "    clientSecret: \"{{ secret('MY_OAUTH_CLIENT_SECRET') }}\"\n"
        "    scopes: [ping]\n"
    )
    config = load_config(config_file)
    source = (FLOWS / "api_call.yaml").read_text()  # unmodified
    engine = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", plugins=Plugins(), workers=2,
                    credentials=config.credentials)  # fmt: skip
    engine.start()
    try:
        ex = engine.run(engine.deploy(source), timeout=60)
        logs = engine.store.get_logs("main", ex.id)
    finally:
        engine.stop()
        engine.store.close()

    assert ex.state.current == "SUCCESS", (ex.to_dict(), [r["message"] for r in logs])
    [token_request] = auth.requests
    assert token_request["client_auth"] == "client_secret_basic"
    assert token_request["form"] == {"grant_type": "client_credentials", "scope": "ping"}
    issued = token_request["token"]
    assert proxy.tunnels == [f"{API_HOST}:443"] and proxy.refused == []
    assert api.calls == [{"path": "/v1/ping", "host": API_HOST, "authorization": f"Bearer {issued}"}]
    outputs = ex.outputs_tree["request"]
    assert outputs["code"] == 200 and json.loads(outputs["body"]) == {"pong": True}
    assert outputs["uri"] == "https://api.example.com/v1/ping"
    assert issued not in "\n".join(r["message"] for r in logs)
    assert issued not in json.dumps(ex.to_dict()) and CLIENT_SECRET not in json.dumps(ex.to_dict())
