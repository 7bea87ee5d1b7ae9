"""Kafka's Java client properties (Kestra's ``properties``) as kafka-python settings.

Every property whose dotted name, with dots as underscores, is a setting of the kafka-python
client is passed on, typed like kafka-python's default (``session.timeout.ms: "6000"`` becomes
``session_timeout_ms=6000``). A few Java properties are translated: ``sasl.jaas.config`` (PLAIN
and SCRAM logins), Kestra's base64 PKCS12 key stores and Kafka's inline PEM stores
(``ssl.truststore.certificates``, ``ssl.keystore.certificate.chain``/``ssl.keystore.key``), and
``ssl.endpoint.identification.algorithm``. Others are reported once, in a warning, as ignored.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from roost import TaskError

# Java properties kafka-python has no use for (serializers are the task's own) and that stay silent.
_SILENT = {
    "key.serializer", "value.serializer", "key.deserializer", "value.deserializer", "group.id",
    "ssl.truststore.location", "ssl.truststore.password", "ssl.truststore.type", "ssl.truststore.certificates",
    "ssl.keystore.location", "ssl.keystore.password", "ssl.keystore.type", "ssl.keystore.certificate.chain",
    "ssl.keystore.key", "ssl.key.password", "sasl.jaas.config", "ssl.endpoint.identification.algorithm",
    "bootstrap.servers", "transactional.id",
}  # fmt: skip
_JAAS = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def client_config(
    properties: dict[str, Any], defaults: dict[str, Any], workdir: Path, logger: Any = None
) -> dict[str, Any]:
    """kafka-python settings for a client whose ``DEFAULT_CONFIG`` is ``defaults``."""
    props = {str(k): ("" if v is None else str(v)) for k, v in (properties or {}).items()}
    servers = props.get("bootstrap.servers", "").strip()
    if not servers:
        raise TaskError("properties: 'bootstrap.servers' is required (host:port[,host:port...])")
    config: dict[str, Any] = {"bootstrap_servers": [s.strip() for s in servers.split(",") if s.strip()]}
    ignored = []
    for key, raw in props.items():
        name = key.replace(".", "_").replace("-", "_")
        if name in defaults and name not in ("key_deserializer", "value_deserializer", "key_serializer",
                                             "value_serializer", "bootstrap_servers"):  # fmt: skip
            config[name] = _typed(key, raw, defaults[name])
        elif key not in _SILENT:
            ignored.append(key)
    if props.get("sasl.jaas.config"):
        settings = dict(_JAAS.findall(props["sasl.jaas.config"]))
        if "username" in settings:
            config["sasl_plain_username"] = settings["username"].replace('\\"', '"')
            config["sasl_plain_password"] = settings.get("password", "").replace('\\"', '"')
        config.setdefault("sasl_mechanism", "PLAIN")
    if props.get("ssl.endpoint.identification.algorithm") == "":
        config["ssl_check_hostname"] = False
    _stores(props, config, workdir)
    if ignored and logger is not None:
        logger.warning(
            "Kafka properties with no kafka-python equivalent, ignored: %s", ", ".join(sorted(ignored))
        )
    return config


def _typed(key: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return raw.lower() == "true"
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as exc:
        raise TaskError(f"properties: {key!r} = {raw!r} is not valid: {exc}") from None
    if isinstance(default, tuple | list):
        return [part.strip() for part in raw.split(",")]
    return raw


def _write(workdir: Path, name: str, data: bytes) -> str:
    path = workdir / name
    path.write_bytes(data)
    path.chmod(0o600)
    return str(path)


def _stores(props: dict[str, str], config: dict[str, Any], workdir: Path) -> None:
    """Trust and key stores as the PEM files kafka-python reads."""
    trust_type = props.get("ssl.truststore.type", "").upper()
    if props.get("ssl.truststore.certificates"):
        config["ssl_cafile"] = _write(workdir, "kafka-ca.pem", props["ssl.truststore.certificates"].encode())
    elif props.get("ssl.truststore.location"):
        _, certs = _pkcs12(props, "truststore", trust_type)
        config["ssl_cafile"] = _write(workdir, "kafka-ca.pem", certs)
    key_type = props.get("ssl.keystore.type", "").upper()
    if props.get("ssl.keystore.certificate.chain") and props.get("ssl.keystore.key"):
        config["ssl_certfile"] = _write(
            workdir, "kafka-cert.pem", props["ssl.keystore.certificate.chain"].encode()
        )
        config["ssl_keyfile"] = _write(workdir, "kafka-key.pem", props["ssl.keystore.key"].encode())
        if props.get("ssl.key.password"):
            config["ssl_password"] = props["ssl.key.password"]
    elif props.get("ssl.keystore.location"):
        key, certs = _pkcs12(props, "keystore", key_type)
        config["ssl_certfile"] = _write(workdir, "kafka-cert.pem", certs)
        config["ssl_keyfile"] = _write(workdir, "kafka-key.pem", key)
    if any(k in config for k in ("ssl_cafile", "ssl_certfile")) and "security_protocol" not in config:
        config["security_protocol"] = "SSL"


def _pkcs12(props: dict[str, str], store: str, store_type: str) -> tuple[bytes, bytes]:
    """A base64 PKCS12 store (Kestra's convention: the file's content, base64-encoded) as PEM key and certs."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    if store_type not in ("", "PKCS12"):
        raise TaskError(
            f"properties: ssl.{store}.type {store_type} is not supported by kafka-python; give the store as "
            f"base64 PKCS12, or as PEM (ssl.{store}.type: PEM with "
            + (
                "ssl.truststore.certificates)"
                if store == "truststore"
                else "ssl.keystore.certificate.chain and ssl.keystore.key)"
            )
        )
    location = props[f"ssl.{store}.location"]
    password = props.get(f"ssl.{store}.password")
    try:
        data = base64.b64decode(location, validate=True)
    except ValueError:
        path = Path(location)
        if not path.is_file():
            raise TaskError(
                f"properties: ssl.{store}.location is neither base64 PKCS12 content nor a file"
            ) from None
        data = path.read_bytes()
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except ValueError as exc:
        raise TaskError(f"properties: ssl.{store}.location cannot be read as PKCS12 ({exc})") from None
    certs = b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in [cert, *(extra or [])] if c is not None
    )
    pem_key = b""
    if key is not None:
        pem_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    return pem_key, certs
