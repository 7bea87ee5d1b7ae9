"""Graylog's log exporter (``io.kestra.plugin.ee.graylog.LogExporter``): GELF over HTTP.

Graylog's GELF HTTP input takes ``POST /gelf`` and answers ``202 Accepted`` before it decodes the
body, so a message it cannot decode is dropped without the sender knowing. Two modes follow from
the input's *Enable Bulk Receiving* option:

* single (``bulkReceiving: false``, the input's default): one message per request;
* bulk (``bulkReceiving: true``): newline-separated messages, at most ``chunk`` per request. Sent to
  an input without the option, a bulk body is one undecodable message and is lost: hence the default.

Either way a request body (decompressed) must fit the input's *Max. HTTP chunk size* (64 KiB by
default; more is refused with 413), which ``maxRequestSize`` mirrors: bulk requests hold what fits,
and a single message too large for it is cut (and counted in ``truncated``) rather than refused.
Each request Graylog accepts is acknowledged to the LogShipper (its offset is saved every ``chunk``
lines, and when the run fails or is killed), so the next run resumes right after it.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from typing import Any, Literal

import httpx
from roost import (
    ApiClient,
    Dynamic,
    HttpOptions,
    LogExporter,
    LogRecords,
    Model,
    Output,
    RunContext,
    TaskError,
)

from roost_graylog import gelf

USER_AGENT = "roost-plugin-graylog/0.1.0"
HINTS = {
    401: "the input requires an authorization header: set `headers` (the input's Authorization Header "
    "Name and Value) or `options.auth`",
    403: "a proxy in front of the input refused the credentials",
    404: "Graylog's GELF HTTP input answers only on the path /gelf: `endpoint` must end with /gelf",
    405: "the input takes only POST",
    413: "the request is larger than the input's Max. HTTP chunk size: lower `maxRequestSize` (or raise "
    "the input's limit)",
}


class HttpAuth(Model):
    """Credentials sent in the ``Authorization`` header (Kestra's ``options.auth``)."""

    type: Literal["BASIC", "BEARER"]
    """BASIC (username and password) or BEARER (token)."""
    username: str | None = None
    """User for BASIC (may be an expression)."""
    password: str | None = None
    """Password for BASIC, e.g. ``{{ secret('GRAYLOG_PASSWORD') }}``."""
    token: str | None = None
    """Token for BEARER, e.g. ``{{ secret('GRAYLOG_TOKEN') }}``."""


class GraylogHttpOptions(HttpOptions):
    """HTTP client settings (Kestra's ``options``): timeouts, TLS, proxy, redirects and ``auth``."""

    auth: HttpAuth | None = None
    """Credentials for a proxy or an input protected with an ``Authorization`` header."""


class GraylogOutput(Output):
    requests: int
    """HTTP requests Graylog accepted."""
    truncated: int = 0
    """Messages cut to fit ``maxRequestSize``."""


class GelfClient(ApiClient):
    """Requests to a GELF HTTP input, with Graylog's answers turned into clear errors."""

    service = "Graylog GELF HTTP input"
    user_agent = USER_AGENT

    def error_message(self, response: httpx.Response) -> str:
        body = self.snippet(response)
        hint = HINTS.get(response.status_code)
        return f"{body}; {hint}" if hint else body


class GraylogExporter(LogExporter, type="io.kestra.plugin.ee.graylog.LogExporter"):
    """Ship execution logs to Graylog: GELF 1.1 messages posted to a GELF HTTP input.

    Each log line becomes one GELF message (host, short and full message, timestamp, syslog level,
    and the tenant, namespace, flow, execution, task and task run as additional fields).
    """

    endpoint: Dynamic[str]
    """URL of the GELF HTTP input, path included: ``http://graylog.example.com:12201/gelf``."""
    graylog_host: Dynamic[str] = "Kestra"
    """The GELF ``host`` (Graylog's ``source``) of every message."""
    chunk: Dynamic[int] = 1000
    """Log lines acknowledged together; in bulk mode also the most messages in one request."""
    bulk_receiving: Dynamic[bool] = False
    """Send newline-separated messages in one request; only for inputs with *Enable Bulk Receiving* on."""
    max_request_size: Dynamic[int] = 65536
    """Largest request body in bytes (before compression): the input's *Max. HTTP chunk size*."""
    compression: Literal["NONE", "GZIP"] = "NONE"
    """``GZIP`` compresses request bodies (``Content-Encoding: gzip``)."""
    headers: Dynamic[dict[str, str]] | None = None
    """Extra request headers, e.g. the input's authorization header: ``{X-Graylog-Token: "{{ secret('T') }}"}``."""
    options: GraylogHttpOptions | None = None
    """HTTP client settings: ``timeout``, ``ssl``, ``proxy``, ``followRedirects``, ``auth``."""

    def export(self, ctx: RunContext, records: LogRecords) -> GraylogOutput:
        if not self.endpoint.startswith(("http://", "https://")):
            raise TaskError(f"endpoint must be the http(s) URL of a GELF HTTP input, got {self.endpoint!r}")
        host = self.graylog_host.strip()
        if not host:
            raise TaskError("graylogHost must not be blank: GELF's host field is mandatory")
        if self.chunk < 1 or self.max_request_size < 256:
            raise TaskError(
                f"chunk must be at least 1 and maxRequestSize at least 256 bytes, got {self.chunk} and {self.max_request_size}"
            )
        headers, secrets = self._headers(ctx)
        sent = GraylogOutput(requests=0)
        with GelfClient(
            self.endpoint, headers=headers, secrets=secrets, options=self.options, ctx=ctx
        ) as client:
            for batch in records.batches(self.chunk):
                for body, last in self._bodies(batch, host, sent):
                    self._post(client, body)
                    sent.requests += 1
                    records.acknowledge(last)  # a failure later resumes right after it
        ctx.metric("requests.count", sent.requests)
        if sent.truncated:
            ctx.logger.warning(
                "%d GELF message(s) were cut to fit maxRequestSize (%d bytes)",
                sent.truncated,
                self.max_request_size,
            )
        return sent

    def _headers(self, ctx: RunContext) -> tuple[dict[str, str], list[str]]:
        headers: dict[str, str] = {"Content-Type": "application/json"}
        secrets: list[str] = []
        for name, value in (self.headers or {}).items():
            clean = GelfClient.header_value(str(value), f"header {name!r}")
            if clean is not None:
                headers[name] = clean
                secrets.append(clean)
        auth = self.options.auth if self.options is not None else None
        if auth is not None:
            if auth.type == "BEARER":
                token = GelfClient.header_value(str(ctx.render(auth.token or "")), "options.auth.token")
                if not token:
                    raise TaskError("options.auth of type BEARER needs a token")
                headers["Authorization"] = f"Bearer {token}"
                secrets.append(token)
            else:
                user, password = str(ctx.render(auth.username or "")), str(ctx.render(auth.password or ""))
                encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
                headers["Authorization"] = f"Basic {encoded}"
                secrets += [password, encoded]
        return headers, secrets

    def _bodies(
        self, batch: list[dict[str, Any]], host: str, sent: GraylogOutput
    ) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """Request bodies for one batch, each with its last record: one message each, or as many
        newline-separated messages as fit."""
        pending: list[bytes] = []
        size = 0
        previous: dict[str, Any] = {}
        for record in batch:
            try:
                body, cut = gelf.encode_within(gelf.message(record, host), self.max_request_size - 1)
            except ValueError as exc:
                raise TaskError(f"log line {record.get('seq')}: {exc}") from None
            sent.truncated += cut
            if not self.bulk_receiving:
                yield body, record
                continue
            if pending and (len(pending) >= self.chunk or size + len(body) + 1 > self.max_request_size):
                yield b"".join(pending), previous
                pending, size = [], 0
            pending.append(body + b"\n")
            size += len(body) + 1
            previous = record
        if pending:
            yield b"".join(pending), previous

    def _post(self, client: GelfClient, body: bytes) -> None:
        headers = {"Content-Encoding": "gzip"} if self.compression == "GZIP" else None
        content = gzip.compress(body, compresslevel=5) if self.compression == "GZIP" else body
        response = client.send("POST", self.endpoint, content=content, headers=headers)
        if not 200 <= response.status_code < 300:  # a redirect not followed, or any other non-success
            raise client.malformed(
                f"POST {self.endpoint}",
                f"expected 202 Accepted, got HTTP {response.status_code}: {client.snippet(response)}",
                response,
            )
