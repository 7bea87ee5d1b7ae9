"""Log exporters: the base class of log-exporter types, and the stream of log lines they ship.

A log exporter ships execution logs to an outside system (Graylog, an OpenTelemetry collector...).
It is declared like a task, with its Kestra type id, registered through the
``register_log_exporters`` hook, and listed under a ``LogShipper`` task's ``logExporters``::

    class Acme(LogExporter, type="io.example.acme.LogExporter"):
        '''Ship logs to Acme.'''
        endpoint: Dynamic[str]
        '''Acme's intake URL.'''
        chunk: Dynamic[int] = 1000
        '''Log lines per request.'''

        def export(self, ctx, records):
            for batch in records.batches(self.chunk):
                post(self.endpoint, batch)      # raise to fail: this batch stays unshipped
            return {"requests": ...}

The LogShipper renders the exporter's ``Dynamic`` properties (secrets are masked like a task's),
hands it the records through :class:`LogRecords`, and keeps one offset per exporter: what the
exporter acknowledged (a batch counts as acknowledged when the next one is asked for; finer
``records.acknowledge(record)`` calls are welcome), so a run that fails or is killed mid-way
resumes right after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

from roost.flow.task import Output, PluginType, RunContext

LogRecord = dict[str, Any]
"""One stored log line, shaped as the API's log entries: ``seq`` (its position in the store, increasing),
``tenantId``, ``namespace``, ``flowId``, ``executionId``, ``taskId``, ``taskRunId``, ``timestamp``
(ISO-8601, UTC), ``level`` (TRACE, DEBUG, INFO, WARN or ERROR) and ``message`` (secrets already masked)."""


class LogRecords:
    """The log lines one exporter receives from a LogShipper run, read from the store page by page.

    Iterate for one record at a time, or call :meth:`batches` for lists of at most ``size`` records.
    An exporter says what the destination accepted with :meth:`acknowledge` (cheap: kept in memory);
    :meth:`batches` acknowledges a batch as soon as the next one is asked for, and saves the offset
    then. The LogShipper also saves it when ``export`` returns or fails, or the run is killed, so the
    next run starts after the last record acknowledged. The records can be read once.
    """

    def __init__(
        self, pages: Iterable[Sequence[LogRecord]], on_checkpoint: Callable[[LogRecord], None] | None = None
    ) -> None:
        self._pages = pages
        self._on_checkpoint = on_checkpoint
        self._read = False
        self.count = 0
        """Records handed to the exporter so far."""
        self.acknowledged: LogRecord | None = None
        """The last record the destination accepted (with every record before it)."""

    @classmethod
    def of(
        cls, records: Iterable[LogRecord], on_checkpoint: Callable[[LogRecord], None] | None = None
    ) -> LogRecords:
        """Records from a plain list (exporter tests)."""
        return cls([list(records)], on_checkpoint)

    def __iter__(self) -> Iterator[LogRecord]:
        if self._read:
            raise RuntimeError("log records can be read once")
        self._read = True
        for page in self._pages:
            for record in page:
                self.count += 1
                yield record

    def acknowledge(self, record: LogRecord) -> None:
        """The destination accepted ``record`` and every record before it."""
        self.acknowledged = record

    def checkpoint(self) -> None:
        """Save the offset of the last acknowledged record now (the shipper writes it to the KV store)."""
        if self.acknowledged is not None and self._on_checkpoint is not None:
            self._on_checkpoint(self.acknowledged)

    def batches(self, size: int) -> Iterator[list[LogRecord]]:
        """Lists of at most ``size`` records, in order; asking for the next list acknowledges the previous one."""
        if size < 1:
            raise ValueError(f"a batch holds at least one record, got size {size}")
        batch: list[LogRecord] = []
        for record in self:
            batch.append(record)
            if len(batch) == size:
                yield batch
                self._done(batch[-1])
                batch = []
        if batch:
            yield batch
            self._done(batch[-1])

    def _done(self, record: LogRecord) -> None:
        self.acknowledge(record)
        self.checkpoint()


class LogExporter(PluginType):
    """Base of log-exporter types: implement ``export(ctx, records)``.

    ``records`` is a :class:`LogRecords`; ``export`` ships them its own way (batching, requests...),
    raises to fail (what it already acknowledged stays shipped), and returns its outputs
    (an :class:`roost.Output`, a mapping or ``None``), exposed under the LogShipper's
    ``outputs.<exporter id>``.
    """

    plugin_kind: ClassVar[str] = "log exporter"

    def export(
        self, ctx: RunContext, records: LogRecords
    ) -> Output | dict[str, Any] | None:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} does not implement export()")


__all__ = ["LogExporter", "LogRecord", "LogRecords"]
