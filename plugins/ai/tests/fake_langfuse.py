"""Langfuse's OTLP/HTTP traces endpoint over real HTTP on 127.0.0.1.

No Langfuse server runs here, so this receiver follows Langfuse's documented OpenTelemetry endpoint
(``POST /api/public/otel/v1/traces``, HTTP Basic auth with the project's public and secret keys) and
decodes every request with the protocol's own definitions (PyPI ``opentelemetry-proto``): protobuf
(``application/x-protobuf``, what ``opentelemetry-sdk``'s exporter sends) or JSON. A body that is not
an ``ExportTraceServiceRequest`` is a 400, a wrong key a 401.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from roost.testing.http import FakeHttpServer, Reply, Request

PATH = "/api/public/otel/v1/traces"


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class FakeLangfuse(FakeHttpServer):
    protocol_version = "HTTP/1.1"

    def __init__(self, public_key: str = "pk-lf-test", secret_key: str = "sk-lf-test") -> None:
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
        self.exports: list[ExportTraceServiceRequest] = []

    @property
    def endpoint(self) -> str:
        """What a flow writes, as Langfuse documents it (without ``/v1/traces``)."""
        return f"{self.url}/api/public/otel"

    def answer(self, request: Request) -> Reply:
        plain = {"Content-Type": "application/json"}
        if request.path != PATH:
            return 404, plain, json.dumps({"message": "not found"}).encode()
        if request.method != "POST":
            return 405, plain, json.dumps({"message": "method not allowed"}).encode()
        if request.headers.get("Authorization") != self.auth:
            return 401, plain, json.dumps({"message": "Invalid credentials"}).encode()
        body = request.body
        if (request.headers.get("Content-Encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            if ctype == "application/x-protobuf":
                export.ParseFromString(body)
            elif ctype == "application/json":
                json_format.Parse(body.decode("utf-8"), export)
            else:
                return 415, plain, json.dumps({"message": f"unsupported content type {ctype}"}).encode()
        except Exception as exc:
            return 400, plain, json.dumps({"message": f"failed to decode: {exc}"}).encode()
        with self.lock:
            self.exports.append(export)
        return (
            200,
            {"Content-Type": "application/x-protobuf"},
            ExportTraceServiceResponse().SerializeToString(),
        )

    def spans(self) -> list[dict[str, Any]]:
        """Every span received: name, kind, ids, status, attributes (decoded), resource and scope."""
        out = []
        with self.lock:
            exports = list(self.exports)
        for export in exports:
            for rs in export.resource_spans:
                resource = {a.key: _value(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append({"name": s.name, "kind": s.kind, "traceId": s.trace_id.hex(), "spanId": s.span_id.hex(),
                                    "parentSpanId": s.parent_span_id.hex(), "status": s.status.code,
                                    "attributes": {a.key: _value(a.value) for a in s.attributes},
                                    "resource": resource, "scope": ss.scope.name})  # fmt: skip
        return out
