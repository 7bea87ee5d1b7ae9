"""Fixtures: a fresh fake Prism Central per test, and a self-signed certificate for TLS tests."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from fake_prism import FakePrism


@pytest.fixture
def prism():
    fake = FakePrism(tick=0.05).start()
    yield fake
    fake.stop()


@pytest.fixture
def conn(prism):
    """Admin connection properties."""
    return dict(prism.conn)


def fast(task_cls, props: dict) -> dict:
    """A short poll interval for the tasks that poll."""
    if "poll_interval" in task_cls.model_fields and "pollInterval" not in props:
        return {**props, "pollInterval": "PT0.02S"}
    return props


@pytest.fixture
def run(conn):
    """run_task with the admin connection and a short poll interval."""
    from roost.testing import run_task

    def _run(task_cls, **props):
        return run_task(task_cls, **fast(task_cls, {**conn, **props}))

    return _run


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tls_context(tmp_path_factory) -> ssl.SSLContext:
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
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return ctx
