"""OpenTelemetry's log exporter (``io.kestra.plugin.ee.opentelemetry.LogExporter``): OTLP/HTTP, JSON.

Each request is an ``ExportLogsServiceRequest`` in OTLP's JSON encoding (protobuf's JSON mapping:
lowerCamelCase names, 64-bit integers as decimal strings, enums as numbers) posted to the
collector's ``/v1/logs``, holding at most ``chunk`` log records under one resource
(``service.name``) and one scope (``roost``). As the OTLP specification says:

* ``200`` is success; a ``partialSuccess`` with ``rejectedLogRecords`` means the collector dropped
  those for good (retrying would not help): they are counted in ``rejected`` and logged as a warning;
* ``429``, and ``503`` with ``Retry-After``, are waited out; other errors (``400`` malformed data,
  ``401``, ``5xx``...) fail the LogShipper task with the collector's ``google.rpc.Status`` message,
  and the next run resumes after the last request the collector accepted.
"""

from __future__ import annotations

import gzip
import json
import time
from datetime import datetime
from typing import Any, Literal

import httpx
from roost import ApiClient, Dynamic, HttpOptions, LogExporter, LogRecords, Output, RunContext, TaskError

USER_AGENT = "roost-plugin-opentelemetry/0.1.0"
SEVERITY = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17}
"""Roost's levels as OTLP severity numbers (the first of each range: TRACE, DEBUG, INFO, WARN, ERROR)."""
ATTRIBUTES = ("tenantId", "namespace", "flowId", "executionId", "taskId", "taskRunId")


class OtlpOutput(Output):
    requests: int
    """Export requests the collector accepted."""
    rejected: int = 0
    """Log records the collector accepted the request of but dropped (OTLP partial success)."""


class OtlpClient(ApiClient):
    """Requests to an OTLP/HTTP collector; its ``google.rpc.Status`` errors become clear messages."""

    service = "OTLP collector"
    user_agent = USER_AGENT

    def error_message(self, response: httpx.Response) -> str:
        try:
            status = response.json()
        except ValueError:
            return self.snippet(response)
        if isinstance(status, dict) and isinstance(status.get("message"), str):
            return self.scrub(status["message"]) or self.snippet(response)
        return self.snippet(response)


def nanos(timestamp: str) -> str:
    """Nanoseconds since the epoch of an ISO-8601 time, as OTLP's JSON writes 64-bit integers."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return str(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)


def log_record(record: dict[str, Any], observed: str) -> dict[str, Any]:
    """One stored log line as an OTLP ``LogRecord``."""
    level = str(record.get("level") or "INFO")
    attributes = [
        {"key": key, "value": {"stringValue": str(record[key])}} for key in ATTRIBUTES if record.get(key)
    ]
    return {
        "timeUnixNano": nanos(record["timestamp"]),
        "observedTimeUnixNano": observed,
        "severityNumber": SEVERITY.get(level, 9),
        "severityText": level,
        "body": {"stringValue": record.get("message") or ""},
        "attributes": attributes,
    }


class OtlpExporter(LogExporter, type="io.kestra.plugin.ee.opentelemetry.LogExporter"):
    """Ship execution logs to an OpenTelemetry collector: OTLP/HTTP export requests in JSON.

    Each log line becomes one OTLP log record (time, severity, body, and the tenant, namespace,
    flow, execution, task and task run as attributes) under the resource ``service.name``.
    """

    otlp_endpoint: Dynamic[str]
    """URL the export requests are posted to, path included: ``http://otel-collector:4318/v1/logs``."""
    authorization_header_name: Dynamic[str] | None = None
    """Name of the header that authenticates to the collector, e.g. ``Authorization``."""
    authorization_header_value: Dynamic[str] | None = None
    """Its value, e.g. ``Bearer {{ secret('OTEL_TOKEN') }}`` (masked in every log line and error)."""
    chunk: Dynamic[int] = 1000
    """Log records per export request."""
    service_name: Dynamic[str] = "roost"
    """The resource's ``service.name``."""
    headers: Dynamic[dict[str, str]] | None = None
    """Extra request headers (values masked like the authorization header's)."""
    compression: Literal["NONE", "GZIP"] = "NONE"
    """``GZIP`` compresses request bodies (``Content-Encoding: gzip``), as collectors accept."""
    options: HttpOptions | None = None
    """HTTP client settings: ``timeout``, ``ssl``, ``proxy``, ``followRedirects``."""

    def export(self, ctx: RunContext, records: LogRecords) -> OtlpOutput:
        if not self.otlp_endpoint.startswith(("http://", "https://")):
            raise TaskError(
                f"otlpEndpoint must be the http(s) URL of an OTLP collector, got {self.otlp_endpoint!r}"
            )
        if self.chunk < 1:
            raise TaskError(f"chunk must be at least 1, got {self.chunk}")
        headers, secrets = self._headers()
        from roost import __version__

        envelope = {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": self.service_name}}]
            },
            "scope": {"name": "roost", "version": __version__},
        }
        out = OtlpOutput(requests=0)
        with OtlpClient(
            self.otlp_endpoint, headers=headers, secrets=secrets, options=self.options, ctx=ctx
        ) as client:
            for batch in records.batches(self.chunk):
                observed = str(time.time_ns())
                body = {
                    "resourceLogs": [
                        {
                            "resource": envelope["resource"],
                            "scopeLogs": [
                                {
                                    "scope": envelope["scope"],
                                    "logRecords": [log_record(r, observed) for r in batch],
                                }
                            ],
                        }
                    ]
                }
                out.rejected += self._post(
                    client, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
                )
                out.requests += 1
                records.acknowledge(batch[-1])
        ctx.metric("requests.count", out.requests)
        if out.rejected:
            ctx.logger.warning("the OTLP collector dropped %d log record(s) it could not take", out.rejected)
        return out

    def _headers(self) -> tuple[dict[str, str], list[str]]:
        headers = {"Content-Type": "application/json"}
        secrets: list[str] = []
        extra = dict(self.headers or {})
        if self.authorization_header_name:
            extra[self.authorization_header_name] = self.authorization_header_value or ""
        for name, value in extra.items():
            clean = OtlpClient.header_value(str(value), f"header {name!r}")
            if clean is not None:
                headers[name] = clean
                secrets.append(clean)
        return headers, secrets

    def _post(self, client: OtlpClient, body: bytes) -> int:
        """Send one export request; the number of records the collector dropped (partial success)."""
        label = f"POST {self.otlp_endpoint}"
        extra = {"Content-Encoding": "gzip"} if self.compression == "GZIP" else None
        content = gzip.compress(body, compresslevel=5) if self.compression == "GZIP" else body
        response = client.send("POST", self.otlp_endpoint, content=content, headers=extra)
        if response.status_code != 200:  # OTLP/HTTP answers success with 200 only
            raise client.malformed(
                label, f"expected 200, got HTTP {response.status_code}: {client.snippet(response)}", response
            )
        if not response.content.strip():
            return 0
        answer = client.decode(response, label)
        partial = answer.get("partialSuccess") if isinstance(answer, dict) else None
        if not isinstance(partial, dict):
            return 0
        try:
            rejected = int(partial.get("rejectedLogRecords") or 0)
        except (TypeError, ValueError):
            raise client.malformed(
                label, f"rejectedLogRecords is not an integer: {partial!r}", response
            ) from None
        if rejected:
            client.log(
                "warning",
                "OTLP collector: %s",
                client.scrub(str(partial.get("errorMessage") or "partial success")),
            )
        return rejected
