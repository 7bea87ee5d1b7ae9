"""Kestra's serde types over raw bytes: STRING, the numbers, bytes, UUID, VOID, JSON and Avro.

Numbers use Kafka's Java serializers' encodings (big-endian two's complement integers, IEEE-754
floats), so records interoperate with Java clients. Avro follows Confluent's wire format when a
schema registry is configured (magic byte 0, the 4-byte schema id, the Avro binary body) and is
plain schemaless Avro with an inline schema alone.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from roost import ApiClient

SerdeType = Literal[
    "STRING", "INTEGER", "FLOAT", "DOUBLE", "LONG", "SHORT", "BYTE_ARRAY", "BYTE_BUFFER", "BYTES", "UUID", "VOID",
    "AVRO", "JSON",
]  # fmt: skip

_NUMBERS = {"SHORT": ">h", "INTEGER": ">i", "LONG": ">q", "FLOAT": ">f", "DOUBLE": ">d"}
_BYTES = ("BYTE_ARRAY", "BYTE_BUFFER", "BYTES")


class SerdeError(ValueError):
    """A value that its serde cannot encode or decode (the message says what was expected)."""


class SchemaRegistry(ApiClient):
    """A Confluent-compatible schema registry (``serdeProperties.schema.registry.url``)."""

    service = "Schema registry"

    def __init__(self, url: str, user_info: str | None = None, ctx: Any = None) -> None:
        headers = {"Accept": "application/vnd.schemaregistry.v1+json, application/json"}
        secrets: list[str] = []
        if user_info:
            headers["Authorization"] = "Basic " + base64.b64encode(user_info.encode()).decode()
            secrets = [user_info, user_info.partition(":")[2]]
        super().__init__(url, headers=headers, secrets=secrets, ctx=ctx)
        self._by_id: dict[int, Any] = {}
        self._registered: dict[tuple[str, str], int] = {}

    def error_message(self, response: Any) -> str:
        try:
            body = response.json()
            return self.scrub(f"{body.get('message')} (error code {body.get('error_code')})")
        except (ValueError, AttributeError):
            return self.snippet(response)

    def register(self, subject: str, schema: str) -> int:
        """The id of ``schema`` under ``subject``, registering it when new (the registry deduplicates)."""
        key = (subject, schema)
        if key not in self._registered:
            with self.doing(f"registering the Avro schema of subject {subject!r}"):
                body = self.request(
                    "POST", f"/subjects/{_segment(subject)}/versions", json_body={"schema": schema}
                )
            self._registered[key] = int(body["id"])
        return self._registered[key]

    def latest(self, subject: str) -> tuple[int, str]:
        """The id and text of the latest schema of ``subject``."""
        with self.doing(f"reading the latest Avro schema of subject {subject!r}"):
            body = self.request("GET", f"/subjects/{_segment(subject)}/versions/latest")
        return int(body["id"]), str(body["schema"])

    def parsed(self, schema_id: int) -> Any:
        """The parsed schema of a registry id (cached: ids never change meaning)."""
        if schema_id not in self._by_id:
            with self.doing(f"reading Avro schema id {schema_id}"):
                body = self.request("GET", f"/schemas/ids/{schema_id}")
            self._by_id[schema_id] = parse_avro(str(body["schema"]), f"schema id {schema_id} of the registry")
        return self._by_id[schema_id]


def _segment(subject: str) -> str:
    from urllib.parse import quote

    return quote(subject, safe="")


def parse_avro(text: str, what: str) -> Any:
    import fastavro

    try:
        return fastavro.parse_schema(json.loads(text))
    except (ValueError, fastavro.schema.SchemaParseException, KeyError, TypeError) as exc:
        raise SerdeError(f"{what} is not a valid Avro schema: {exc}") from None


class Codec:
    """Encodes and decodes one side (key or value) of records with one serde type."""

    def __init__(
        self,
        kind: str,
        *,
        is_key: bool,
        schema: str | None = None,
        registry: SchemaRegistry | None = None,
    ) -> None:
        self.kind = kind
        self.is_key = is_key
        self.side = "key" if is_key else "value"
        self.schema_text = schema
        self.registry = registry
        self._inline = (
            parse_avro(schema, f"the {self.side} Avro schema") if schema and kind == "AVRO" else None
        )

    # -- encoding ----------------------------------------------------------------------------------
    def encode(self, value: Any, topic: str) -> bytes | None:
        kind = self.kind
        if value is None or kind == "VOID":
            return None
        if kind == "STRING":
            return (value if isinstance(value, str) else json.dumps(value, default=str)).encode()
        if kind == "JSON":
            return json.dumps(value, default=str, separators=(",", ":")).encode()
        if kind in _NUMBERS:
            try:
                number = float(value) if kind in ("FLOAT", "DOUBLE") else int(value)
                return struct.pack(_NUMBERS[kind], number)
            except (ValueError, TypeError, struct.error) as exc:
                raise SerdeError(f"the {self.side} {value!r} is not a {kind.lower()}: {exc}") from None
        if kind in _BYTES:
            if isinstance(value, bytes):
                return value
            try:
                return base64.b64decode(str(value), validate=True)
            except ValueError:
                raise SerdeError(
                    f"the {self.side} of a {kind} serializer must be base64 text, got {value!r}"
                ) from None
        if kind == "UUID":
            try:
                return str(uuid.UUID(str(value))).encode()
            except ValueError:
                raise SerdeError(f"the {self.side} {value!r} is not a UUID") from None
        if kind == "AVRO":
            return self._encode_avro(value, topic)
        raise SerdeError(f"unknown serde type {kind}")

    def _encode_avro(self, value: Any, topic: str) -> bytes:
        import fastavro

        header = b""
        parsed = self._inline
        if self.registry is not None:
            subject = f"{topic}-{self.side}"
            if self.schema_text:
                schema_id = self.registry.register(subject, self.schema_text)
            else:
                schema_id, text = self.registry.latest(subject)
                parsed = parse_avro(text, f"the latest schema of subject {subject!r}")
            header = b"\x00" + struct.pack(">I", schema_id)
        if parsed is None:
            raise SerdeError(
                f"AVRO {self.side}s need a schema: set {self.side}AvroSchema, or serdeProperties.schema.registry.url"
            )
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, parsed, value, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SerdeError(
                f"the {self.side} {_short(value)} does not match its Avro schema: {exc}"
            ) from None
        return header + out.getvalue()

    # -- decoding ----------------------------------------------------------------------------------
    def decode(self, data: bytes | None) -> Any:
        kind = self.kind
        if data is None or kind == "VOID":
            return None
        if kind == "STRING":
            return data.decode("utf-8", "replace")
        if kind == "JSON":
            try:
                return json.loads(data)
            except ValueError as exc:
                raise SerdeError(f"the {self.side} is not valid JSON ({exc}): {_short(data)}") from None
        if kind in _NUMBERS:
            try:
                return struct.unpack(_NUMBERS[kind], data)[0]
            except struct.error:
                raise SerdeError(
                    f"the {self.side} is {len(data)} bytes, not a {kind.lower()} "
                    f"({struct.calcsize(_NUMBERS[kind])} bytes): {_short(data)}"
                ) from None
        if kind in _BYTES:
            return base64.b64encode(data).decode()
        if kind == "UUID":
            try:
                return str(uuid.UUID(data.decode()))
            except (ValueError, UnicodeDecodeError):
                raise SerdeError(f"the {self.side} is not a UUID: {_short(data)}") from None
        if kind == "AVRO":
            return self._decode_avro(data)
        raise SerdeError(f"unknown serde type {kind}")

    def _decode_avro(self, data: bytes) -> Any:
        import fastavro

        parsed = self._inline
        body = data
        if self.registry is not None:
            if len(data) < 5 or data[0] != 0:
                raise SerdeError(
                    f"the {self.side} is not in the schema registry's wire format (magic byte 0 and a schema id): "
                    f"{_short(data)}"
                )
            parsed = self.registry.parsed(struct.unpack(">I", data[1:5])[0])
            body = data[5:]
        if parsed is None:
            raise SerdeError(
                f"AVRO {self.side}s need a schema: set serdeProperties.schema.registry.url, or {self.side}AvroSchema"
            )
        try:
            return jsonable(fastavro.schemaless_reader(io.BytesIO(body), parsed, None))
        except (EOFError, ValueError, IndexError, TypeError, UnicodeDecodeError, struct.error) as exc:
            raise SerdeError(
                f"the {self.side} is not valid Avro for its schema ({exc}): {_short(data)}"
            ) from None


def jsonable(value: Any) -> Any:
    """Avro's decoded values as JSON values (ISO dates and times, decimals and UUIDs as text, bytes as base64)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
