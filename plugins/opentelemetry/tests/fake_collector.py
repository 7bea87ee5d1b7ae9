"""An OpenTelemetry collector's OTLP/HTTP logs receiver over real HTTP on 127.0.0.1.

No collector binary can be installed here, so this receiver follows the OTLP/HTTP specification
and decodes every request with the protocol's own definitions (PyPI ``opentelemetry-proto``,
protobuf's JSON mapping): a body that is not a valid ``ExportLogsServiceRequest`` gets
``400`` with a ``google.rpc.Status`` body, exactly as a collector answers malformed data.

* ``POST /v1/logs`` with ``Content-Type: application/json`` (``Content-Encoding: gzip`` decoded)
  answers ``200`` and an ``ExportLogsServiceResponse``; any other path 404, another method 405,
  another content type 415;
* with :attr:`FakeCollector.token`, a request without ``Authorization: Bearer <token>`` gets 401;
* :attr:`FakeCollector.reject_every` makes the collector drop that many records of each request,
  answered as a ``partialSuccess``.
"""

from __future__ import annotations

import gzip
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from roost.testing.http import FakeHttpServer, Reply, Request


def status(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` in JSON."""
    import json

    return json.dumps({"code": code, "message": message}).encode()


class FakeCollector(FakeHttpServer):
    protocol_version = "HTTP/1.1"

    def __init__(self, token: str | None = None, reject_every: int = 0) -> None:
        super().__init__()
        self.token = token
        self.reject_every = reject_every
        self.exports: list[ExportLogsServiceRequest] = []
        self.scripted: dict[int, dict[str, Any]] = {}

    def inject_at(self, n: int, status: int, body: Any = None, **kw: Any) -> None:
        """Answer the ``n``-th request (counting from 1) with this fault (``delay`` hangs it)."""
        self.scripted[n] = {"status": status, "body": body, **kw}

    def record(self, request: Request) -> None:
        super().record(request)
        fault = self.scripted.pop(len(self.requests), None)
        if fault is not None:  # record() runs just before the faults are looked up
            self.inject(**fault)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/v1/logs"

    def answer(self, request: Request) -> Reply:
        json_type = {"Content-Type": "application/json"}
        if request.path != "/v1/logs":
            return 404, json_type, status(5, "not found")
        if request.method != "POST":
            return 405, json_type, status(12, "method not allowed")
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, json_type, status(16, "missing or wrong bearer token")
        if (request.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return 415, json_type, status(3, "unsupported content type")
        body = request.body
        if (request.headers.get("Content-Encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        export = ExportLogsServiceRequest()
        try:
            json_format.Parse(body.decode("utf-8"), export)
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            return 400, json_type, status(3, f"failed to unmarshal request: {exc}")
        with self.lock:
            self.exports.append(export)
        response = ExportLogsServiceResponse()
        if self.reject_every:
            response.partial_success.rejected_log_records = self.reject_every
            response.partial_success.error_message = "records too old"
        return 200, json_type, json_format.MessageToJson(response).encode()

    def records(self) -> list[dict[str, Any]]:
        """Every log record received, flattened: body, severity, time, attributes, resource and scope."""
        out = []
        for export in self.exports:
            for rl in export.resource_logs:
                resource = {a.key: a.value.string_value for a in rl.resource.attributes}
                for sl in rl.scope_logs:
                    for r in sl.log_records:
                        out.append({
                            "body": r.body.string_value, "severityNumber": r.severity_number,
                            "severityText": r.severity_text, "timeUnixNano": r.time_unix_nano,
                            "attributes": {a.key: a.value.string_value for a in r.attributes},
                            "resource": resource, "scope": sl.scope.name,
                        })  # fmt: skip
        return out
