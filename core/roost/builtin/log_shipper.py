"""LogShipper (``io.kestra.plugin.ee.core.log.LogShipper``): ship stored execution logs to log exporters;
and FileLogExporter, the exporter that writes them to files in internal storage.

Each run reads the tenant's log lines stored since the previous run (within ``lookbackPeriod`` on the
first), filtered by level, namespace, flow and execution, and hands them to every exporter listed in
``logExporters`` (types registered through the ``register_log_exporters`` hook), one after the other.

**Offsets.** Kestra keeps the date of the last log shipped under ``offsetKey`` in the KV store. Roost
keeps, under the same key of the flow's namespace, one offset *per exporter*: the store's log ``seq``
(the order lines were written, which a timestamp is not: lines are buffered before they are written)
and the date of the last line shipped. An exporter's offset moves after each batch it acknowledges
(``LogRecords.batches``), to its last acknowledged line when it fails or the run is killed, and to the
end of the run's range when it returns: the next run resumes right after what the destination
accepted, and an exporter that failed never holds back the others.
A key holding a date (set by hand, or by Kestra) is read as "ship what was logged after this date".
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from roost import Dynamic, LogExporter, LogLevel, LogRecords, Output, RunContext, Task, TaskError
from roost.engine.context import render_task
from roost.store.keys import MISSING, InvalidKey, kv_key

SHIPPER = "io.kestra.plugin.ee.core.log.LogShipper"
FILE_EXPORTER = "io.kestra.plugin.ee.core.log.FileLogExporter"


class ShipperOutput(Output):
    count: int
    """Log lines shipped by this run (the most any exporter received)."""
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Each exporter's outputs, by exporter id (with ``count``, the lines it received)."""


class LogShipper(Task, type=SHIPPER):
    """Ship execution logs to one or more log exporters (Graylog, OpenTelemetry...), incrementally.

    Run it on a schedule: each run ships the lines logged since the previous one (within
    ``lookbackPeriod`` the first time), and each exporter resumes after the last batch it
    acknowledged, so a failed or killed run loses nothing and ships nothing twice.
    """

    log_exporters: list[LogExporter] = Field(min_length=1)
    """Where the logs go: a list of log exporters, each with an ``id`` and a ``type``."""
    log_level_filter: Dynamic[LogLevel] = "INFO"
    """Minimum level shipped: INFO ships INFO, WARN and ERROR."""
    lookback_period: Dynamic[timedelta] = timedelta(days=1)
    """How far back the first run (an exporter without an offset) looks (ISO-8601 duration)."""
    namespace: Dynamic[str] | None = None
    """Ship only the logs of this namespace (and its children); all the tenant's logs by default."""
    flow_id: Dynamic[str] | None = None
    """Ship only the logs of this flow."""
    execution_id: Dynamic[str] | None = None
    """Ship only the logs of this execution."""
    offset_key: Dynamic[str] = "LogShipper-state"
    """KV key (in the flow's namespace) holding where each exporter stopped; a new key ships again from ``lookbackPeriod``."""
    delete: Dynamic[bool] = False
    """Delete the shipped lines from Roost's store once every exporter has shipped them."""
    batch_size: Dynamic[int] = 1000
    """Log lines read from the store per query (exporters batch their requests with their own ``chunk``)."""

    @field_validator("log_exporters", mode="before")
    @classmethod
    def _resolve_exporters(cls, value: Any) -> Any:
        """Entries given as mappings (outside a flow file) are resolved by type, as the flow loader does."""
        if not isinstance(value, list):
            return value
        from roost.plugins import get_plugins

        resolved = []
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("type"), str):
                found = get_plugins().resolve(item["type"])
                if found is None or not issubclass(found, LogExporter):
                    raise ValueError(f"unknown log exporter type '{item['type']}'")
                item = found.model_validate(item)
            resolved.append(item)
        return resolved

    @model_validator(mode="after")
    def _unique_exporter_ids(self) -> LogShipper:
        seen: set[str] = set()
        for exporter in self.log_exporters:
            if exporter.id in seen:
                raise ValueError(f"two log exporters have the id '{exporter.id}' (each keeps its own offset)")
            seen.add(exporter.id)
        return self

    def run(self, ctx: RunContext) -> ShipperOutput:
        runtime = getattr(ctx, "runtime")  # noqa: B009 - the engine's context; not part of the public protocol
        store = runtime.logs
        if store is None:
            raise TaskError("no log store is configured for this run")
        if self.batch_size < 1:
            raise TaskError(f"batchSize must be at least 1, got {self.batch_size}")
        try:
            kv_key(self.offset_key)
        except InvalidKey as exc:
            raise TaskError(f"offsetKey: {exc}") from None
        through = store.last_seq()  # lines written during the run wait for the next one
        filters = {"min_level": self.log_level_filter, "namespace": self.namespace, "flow_id": self.flow_id,
                   "execution_id": self.execution_id}  # fmt: skip
        offsets = _Offsets(runtime.kv, ctx.namespace, self.offset_key)
        cutoff = _iso(datetime.now(UTC) - self.lookback_period)
        outputs: dict[str, dict[str, Any]] = {}
        failures: list[str] = []
        starts: list[tuple[int, str | None]] = []
        for exporter in self.log_exporters:
            if exporter.disabled:
                continue
            after, since = offsets.start(exporter.id, cutoff)
            starts.append((after, since))
            records = LogRecords(
                self._pages(ctx, store, after, through, {**filters, "since": since}),
                on_checkpoint=functools.partial(offsets.shipped_record, exporter.id),
            )
            label = f"log exporter '{exporter.id}' ({exporter.type})"
            try:
                rendered = render_task(exporter, ctx)  # type: ignore[arg-type]
                out = rendered.export(ctx, records)  # type: ignore[attr-defined]
            except Exception as exc:
                records.checkpoint()  # what the destination accepted before the failure stays shipped
                if ctx.killed():
                    raise
                failures.append(f"{label}: {exc}")
                ctx.logger.error("%s failed after %d line(s); it resumes from there next run: %s",
                                 label, records.count, exc)  # fmt: skip
                continue
            offsets.shipped(exporter.id, through, None)
            outputs[exporter.id] = {"count": records.count, **_as_dict(out)}
            ctx.metric("records", records.count, exporter=exporter.id)
            ctx.logger.info("shipped %d log line(s) to %s", records.count, label)
        if failures:
            raise TaskError("log shipping failed: " + "; ".join(failures), ShipperOutput(
                count=max((o["count"] for o in outputs.values()), default=0), outputs=outputs))  # fmt: skip
        if self.delete and starts:
            after = min(a for a, _ in starts)
            since = starts[0][1] if all(s is not None for _, s in starts) else None
            deleted = store.delete(after, through, **{**filters, "since": since})
            ctx.logger.info("deleted %d shipped log line(s) from the store", deleted)
        return ShipperOutput(count=max((o["count"] for o in outputs.values()), default=0), outputs=outputs)

    def _pages(
        self, ctx: RunContext, store: Any, after: int, through: int, filters: dict[str, Any]
    ) -> Iterator[list[dict[str, Any]]]:
        """The lines in ``(after, through]`` a page at a time, so that no run holds them all in memory."""
        while after < through:
            ctx.raise_if_killed()  # type: ignore[attr-defined]
            page = store.page(after, self.batch_size, through_seq=through, **filters)
            if not page:
                return
            yield page
            after = page[-1]["seq"]


class _Offsets:
    """Where each exporter stopped, kept in one KV entry: ``{"exporters": {id: {"seq", "timestamp"}}}``."""

    def __init__(self, kv: Any, namespace: str, key: str) -> None:
        self.kv, self.namespace, self.key = kv, namespace, key
        value = kv.get(namespace, key)
        self.since: str | None = None  # a date left under the key by hand (or by Kestra)
        self.state: dict[str, Any] = {"exporters": {}}
        if value is MISSING or value is None:
            return
        if isinstance(value, str) and _parse(value) is not None:
            self.since = _iso(_parse(value))  # type: ignore[arg-type]
        elif isinstance(value, dict) and isinstance(value.get("exporters"), dict):
            self.state = value
        else:
            raise TaskError(
                f"KV key '{key}' of namespace '{namespace}' holds {str(value)[:80]!r}, which is not a log "
                "shipper offset (a date, or what LogShipper writes): delete it or choose another offsetKey"
            )

    def start(self, exporter_id: str, cutoff: str) -> tuple[int, str | None]:
        """(``seq`` to read after, earliest date or ``None``) for one exporter."""
        entry = self.state["exporters"].get(exporter_id)
        if isinstance(entry, dict) and isinstance(entry.get("seq"), int):
            return entry["seq"], None
        return 0, self.since or cutoff

    def shipped_record(self, exporter_id: str, record: dict[str, Any]) -> None:
        self.shipped(exporter_id, record["seq"], record["timestamp"])

    def shipped(self, exporter_id: str, seq: int, timestamp: str | None) -> None:
        entry = self.state["exporters"].setdefault(exporter_id, {})
        if seq <= entry.get("seq", -1):
            return
        entry["seq"] = seq
        if timestamp is not None:
            entry["timestamp"] = timestamp
        self.kv.put(self.namespace, self.key, self.state)


class FileOutput(Output):
    uris: list[str]
    """The files written, in order (``kestra://`` URIs); none when there was nothing to ship."""
    uri: str | None = None
    """The first file (Kestra's examples read ``outputs.<shipper>.outputs.<exporter>.uri``)."""


class FileLogExporter(LogExporter, type=FILE_EXPORTER):
    """Ship logs to files in internal storage, one log line per line, for any later task to move on.

    ``ION`` files hold one Amazon Ion struct per line (the timestamp an Ion timestamp), ``JSON`` files
    one JSON object per line; both carry the log lines' fields (``seq``, ``tenantId``, ``namespace``,
    ``flowId``, ``executionId``, ``taskId``, ``taskRunId``, ``timestamp``, ``level``, ``message``).
    The lines count as shipped once every file is stored.
    """

    format: Literal["ION", "JSON"] = "ION"
    """Format of the files: ``ION`` (Kestra's internal format) or ``JSON`` (JSON lines)."""
    log_file_prefix: Dynamic[str] = "kestra-log-file"
    """Start of the files' names: ``<prefix>-<date and time>[-<n>].ion`` or ``.json``."""
    max_lines_per_file: Dynamic[int] | None = None
    """Start a new file after this many lines (one file by default)."""

    def export(self, ctx: RunContext, records: LogRecords) -> FileOutput:
        if self.max_lines_per_file is not None and self.max_lines_per_file < 1:
            raise TaskError(f"maxLinesPerFile must be at least 1, got {self.max_lines_per_file}")
        if not re.fullmatch(r"[\w.-]{1,100}", self.log_file_prefix):
            raise TaskError(
                f"logFilePrefix must be letters, digits, '.', '_' or '-', got {self.log_file_prefix!r}"
            )
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
        suffix = ".ion" if self.format == "ION" else ".json"
        line = _ion_line if self.format == "ION" else _json_line
        uris: list[str] = []
        out: Any = None
        lines = 0
        for record in records:
            if out is None or (self.max_lines_per_file and lines == self.max_lines_per_file):
                if out is not None:
                    out.close()
                    uris.append(ctx.put_file(out.name))
                part = f"-{len(uris) + 1}" if self.max_lines_per_file else ""
                out = (ctx.working_dir / f"{self.log_file_prefix}-{stamp}{part}{suffix}").open(
                    "w", encoding="utf-8"
                )
                lines = 0
            out.write(line(record) + "\n")
            lines += 1
        if out is not None:
            out.close()
            uris.append(ctx.put_file(out.name))
        return FileOutput(uris=uris, uri=uris[0] if uris else None)


_ION_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)")
"""The ISO-8601 date-times that are also Ion timestamp literals (what the store writes)."""


def _json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _ion_line(record: dict[str, Any]) -> str:
    """One Ion struct: Ion text reads JSON's strings, numbers and null as they are; the time is an Ion timestamp."""
    fields = []
    for key, value in record.items():
        if key == "timestamp" and isinstance(value, str) and _ION_TIMESTAMP.fullmatch(value):
            text = value
        else:
            text = json.dumps(value, ensure_ascii=False)
        fields.append(f"{key}:{text}")
    return "{" + ",".join(fields) + "}"


def _parse(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    """The stored log lines' timestamp form (microseconds always, so that strings compare as dates)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_dict(out: Any) -> dict[str, Any]:
    if out is None:
        return {}
    if isinstance(out, Output):
        return out.as_dict()
    if isinstance(out, dict):
        return dict(out)
    raise TaskError(f"a log exporter returned {type(out).__name__}; expected an Output, a mapping or nothing")


TASKS = (LogShipper,)
LOG_EXPORTERS = (FileLogExporter,)
