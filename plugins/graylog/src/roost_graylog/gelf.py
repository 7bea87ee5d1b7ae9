"""GELF 1.1 messages from Roost's log lines, and their encoding for Graylog's GELF HTTP input.

One log line becomes one message: ``host`` (the exporter's ``graylogHost``), ``short_message`` (the
first non-blank line), ``full_message`` (the whole text, when it says more than its first line),
``timestamp`` (seconds since the epoch, milliseconds as decimals), ``level`` (syslog: ERROR 3, WARN 4,
INFO 6, DEBUG and TRACE 7) and additional fields named as Kestra's log entries: ``_tenantId``,
``_namespace``, ``_flowId``, ``_executionId``, ``_taskId``, ``_taskRunId`` and ``_logLevel`` (the
level's name; ``_level`` would clash with GELF's own ``level`` once Graylog drops the underscore).
Absent fields are left out, never sent as ``null``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

GELF_VERSION = "1.1"
SYSLOG_LEVELS = {"ERROR": 3, "WARN": 4, "INFO": 6, "DEBUG": 7, "TRACE": 7}
"""Roost's levels as syslog severities (GELF's ``level``); TRACE has no syslog level below DEBUG."""
EMPTY_MESSAGE = "(empty log line)"
"""``short_message`` of a blank log line: Graylog needs a message to index."""
FIELDS = (
    ("tenantId", "_tenantId"),
    ("namespace", "_namespace"),
    ("flowId", "_flowId"),
    ("executionId", "_executionId"),
    ("taskId", "_taskId"),
    ("taskRunId", "_taskRunId"),
)
TRUNCATED = "… [truncated by Roost: {} more bytes]"


def epoch(timestamp: str) -> float:
    """Seconds since the epoch, to the millisecond, of an ISO-8601 time (``...Z`` or with an offset)."""
    return round(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp(), 3)


def message(record: dict[str, Any], host: str) -> dict[str, Any]:
    """The GELF message of one stored log line."""
    text = record.get("message") or ""
    short = next((line.rstrip() for line in text.splitlines() if line.strip()), "") or EMPTY_MESSAGE
    level = str(record.get("level") or "INFO")
    gelf: dict[str, Any] = {
        "version": GELF_VERSION,
        "host": host,
        "short_message": short,
        "timestamp": epoch(record["timestamp"]),
        "level": SYSLOG_LEVELS.get(level, 6),
    }
    if text and text != short:
        gelf["full_message"] = text
    for key, field in FIELDS:
        if record.get(key) is not None:
            gelf[field] = record[key]
    gelf["_logLevel"] = level
    return gelf


def encode(gelf: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON on one line (bulk requests separate messages with newlines)."""
    return json.dumps(gelf, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def encode_within(gelf: dict[str, Any], limit: int) -> tuple[bytes, bool]:
    """The encoded message, its text cut so that it fits in ``limit`` bytes; and whether it was cut.

    ``full_message`` is shortened first (dropped when nothing of it fits), then ``short_message``;
    a cut text ends saying how many bytes went.
    """
    body = encode(gelf)
    if len(body) <= limit:
        return body, False
    gelf = dict(gelf)
    for field in ("full_message", "short_message"):
        if field not in gelf:
            continue
        raw = gelf[field].encode()
        keep = len(raw)
        while len(body) > limit and keep > 0:
            keep = max(0, keep - (len(body) - limit) - len(TRUNCATED.format(len(raw))))
            cut = raw[:keep].decode(errors="ignore")  # never half a character
            if field == "full_message" and not cut:
                del gelf[field]
            else:
                gelf[field] = cut + TRUNCATED.format(len(raw) - len(cut.encode()))
            body = encode(gelf)
    if len(body) > limit:
        raise ValueError(
            f"a GELF message cannot fit in {limit} bytes, even with its text cut ({len(body)} bytes)"
        )
    return body, True
