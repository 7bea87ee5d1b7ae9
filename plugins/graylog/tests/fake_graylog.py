"""A Graylog GELF HTTP input over real HTTP on 127.0.0.1, as graylog2-server implements it.

No Graylog server can run here (it needs OpenSearch and MongoDB), so this receiver follows the
input's documented behaviour and its source (``AbstractHttpTransport``, ``HttpHandler``,
``GelfCodec``):

* ``OPTIONS`` answers 200; when an *Authorization Header Name/Value* is configured, a request
  without that exact header gets 401; a method other than POST gets 405; any target but exactly
  ``/gelf`` (a query string included) gets 404;
* ``Content-Encoding: gzip``/``deflate`` bodies are decompressed, and a body larger than
  *Max. HTTP chunk size* (64 KiB by default, counted after decompression) gets 413;
* an accepted request gets ``202 Accepted`` with an empty body *before* its content is decoded:
  a message the GELF codec refuses (not JSON, ``host`` not text or blank, no ``short_message`` nor
  ``message``...) is dropped and only recorded in :attr:`FakeGraylog.dropped`, as Graylog logs it;
* with *Enable Bulk Receiving*, the body is split on ``\\n`` or ``\\r\\n`` and each line is one message;
  without it the whole body is one message (so a bulk body is dropped).

Decoded messages are kept in :attr:`FakeGraylog.messages` the way Graylog stores them: additional
fields lose their underscore, ``version`` is not kept, and each request's message count is kept in
:attr:`FakeGraylog.requests_sizes`.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

from roost.testing.http import FakeHttpServer, Reply, Request

RESERVED = {"_id", "message", "source", "timestamp", "full_message", "level", "streams"}


class FakeGraylog(FakeHttpServer):
    protocol_version = "HTTP/1.1"  # Graylog keeps connections alive

    def __init__(
        self,
        *,
        bulk_receiving: bool = False,
        max_chunk_size: int = 65536,
        auth_header: tuple[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.bulk_receiving = bulk_receiving
        self.max_chunk_size = max_chunk_size
        self.auth_header = auth_header
        self.messages: list[dict[str, Any]] = []
        self.dropped: list[str] = []
        self.requests_sizes: list[int] = []
        self.encodings: list[str] = []
        self.scripted: dict[int, dict[str, Any]] = {}

    def inject_at(self, n: int, status: int, **kw: Any) -> None:
        """Answer the ``n``-th request (counting from 1, all requests so far included) with this fault."""
        self.scripted[n] = {"status": status, **kw}

    @property
    def endpoint(self) -> str:
        return f"{self.url}/gelf"

    def record(self, request: Request) -> None:
        self.requests.append((request.method, request.target))  # bodies are decoded in answer()
        fault = self.scripted.pop(len(self.requests), None)
        if fault is not None:  # record() runs just before the faults are looked up
            self.inject(**fault)

    def answer(self, request: Request) -> Reply:
        if request.method == "OPTIONS":
            return 200, {}, b""
        if self.auth_header is not None:
            name, value = self.auth_header
            if request.headers.get(name) != value:
                return 401, {}, b""
        if request.method != "POST":
            return 405, {}, b""
        if request.target != "/gelf":
            return 404, {}, b""
        encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
        try:
            body = {"gzip": gzip.decompress, "x-gzip": gzip.decompress, "deflate": zlib.decompress}.get(
                encoding, lambda b: b
            )(request.body)
        except (OSError, zlib.error, EOFError):
            return 400, {}, b""  # netty's decompressor fails the request
        if len(body) > self.max_chunk_size:
            return 413, {"Connection": "close"}, b""
        frames = body.splitlines() if self.bulk_receiving else [body]
        decoded = 0
        with self.lock:
            self.encodings.append(encoding)
            for frame in frames:
                if not frame.strip():
                    continue
                try:
                    self.messages.append(decode(frame))
                    decoded += 1
                except ValueError as exc:
                    self.dropped.append(str(exc))
            self.requests_sizes.append(decoded)
        return 202, {}, b""


def decode(payload: bytes) -> dict[str, Any]:
    """One GELF message as Graylog's GelfCodec reads it (ValueError for what it refuses)."""
    try:
        node = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"JSON is null/could not be parsed (invalid JSON): {exc}") from None
    if not isinstance(node, dict):
        raise ValueError("JSON is not an object")
    if "host" in node:
        if not isinstance(node["host"], str):
            raise ValueError('has invalid "host"')
        if not node["host"].strip():
            raise ValueError('has empty mandatory "host" field.')
    if "short_message" in node:
        if not isinstance(node["short_message"], str):
            raise ValueError('has invalid "short_message"')
    elif "message" in node:
        if not isinstance(node["message"], str):
            raise ValueError('has invalid "message"')
    else:
        raise ValueError('is missing mandatory "short_message" or "message" field.')
    stored: dict[str, Any] = {
        "message": node.get("short_message", node.get("message")),
        "source": node.get("host"),
        "timestamp": node.get("timestamp") if isinstance(node.get("timestamp"), int | float) else None,
    }
    if node.get("full_message") is not None:
        stored["full_message"] = node["full_message"]
    if isinstance(node.get("level"), int):
        stored["level"] = node["level"]
    for key, value in node.items():
        if key in ("version", "short_message", "host") or value is None:
            continue
        name = key[1:] if key.startswith("_") and len(key) > 1 else key
        if name in stored or key in RESERVED or name in RESERVED:
            continue
        stored[name] = json.dumps(value) if isinstance(value, dict | list) else value
    return stored
