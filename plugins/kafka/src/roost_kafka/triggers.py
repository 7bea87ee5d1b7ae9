"""Kafka triggers: a batch per poll (Trigger) and one execution per message (RealtimeTrigger)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from roost import Dynamic, PollingTrigger
from roost import RealtimeTrigger as ListeningTrigger

from roost_kafka.base import Consumer, ConsumerOptions, render_fields


class Trigger(ConsumerOptions, PollingTrigger, type="io.kestra.plugin.kafka.Trigger"):
    """Read Kafka messages every ``interval`` and start one execution per batch.

    The batch is a file of internal storage (``trigger.uri``, one JSON message per line, as Consume
    writes) and ``trigger.messagesCount``. The group's offsets are committed only once the execution
    exists: a crash in between reads the batch again (at-least-once). No execution starts for an
    empty poll.
    """

    group_id: Dynamic[str]  # type: ignore[assignment]
    """Consumer group: each batch holds what the group has not committed yet."""
    poll_duration: Dynamic[timedelta] = timedelta(seconds=5)
    """How long a poll waits for records; an empty poll ends the batch."""
    max_records: Dynamic[int] | None = None
    """Stop the batch after about this many records."""
    max_duration: Dynamic[timedelta] | None = None
    """Stop the batch after about this long."""
    interval: timedelta = timedelta(seconds=60)
    """Time between two batches."""

    def evaluate(self, ctx: Any) -> Iterator[dict[str, Any]]:
        opts = render_fields(self, ctx)
        workdir = Path(tempfile.mkdtemp(prefix=f"kafka-{self.id}-"))
        try:
            with Consumer(opts, ctx, workdir) as consumer:
                batch = consumer.read_batch(workdir / "messages.ion", opts.poll_duration, opts.max_records,
                                            opts.max_duration, ctx.stopped)  # fmt: skip
                if batch.count == 0:
                    consumer.commit()  # records left out by header filters or serde errors are done with
                    return
                uri = ctx.put_file(batch.path, f"{self.id}.ion")
                execution = yield {"messagesCount": batch.count, "uri": uri}
                if execution is not None:
                    consumer.commit()
                    ctx.logger.info("batch of %d message(s) started execution %s", batch.count, execution.id)
                else:
                    ctx.logger.warning(
                        "no execution started for a batch of %d message(s); not committed", batch.count
                    )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


class RealtimeTrigger(ConsumerOptions, ListeningTrigger, type="io.kestra.plugin.kafka.RealtimeTrigger"):  # type: ignore[misc]
    """Start one execution per Kafka message, as it arrives.

    ``trigger.key``, ``trigger.value``, ``trigger.headers``, ``trigger.topic``, ``trigger.partition``,
    ``trigger.timestamp`` and ``trigger.offset`` describe the message. Its offset is committed only once
    its execution exists (at-least-once: a crash in between delivers it again). The scheduler runs the
    consumer in a thread of its own, and restarts it when the flow changes.
    """

    group_id: Dynamic[str]  # type: ignore[assignment]
    """Consumer group: messages the group committed are not delivered again."""

    def listen(self, ctx: Any) -> Iterator[dict[str, Any] | None]:
        opts = render_fields(self, ctx)
        workdir = Path(tempfile.mkdtemp(prefix=f"kafka-{self.id}-"))
        try:
            with Consumer(opts, ctx, workdir) as consumer:
                ctx.logger.info(
                    "listening to %s as group %s", opts.topic or opts.topic_pattern, consumer.group_id
                )
                while True:
                    records = consumer.poll(1.0)
                    if not records:
                        yield None  # idle: the scheduler may stop us here
                        continue
                    for index, record in enumerate(records):
                        msg = consumer.decode(record) if consumer.accepts(record) else None
                        if msg is None:  # filtered out, or dropped by onSerdeError
                            consumer.commit_record(record)
                            continue
                        execution = yield msg
                        if execution is None:  # not started: read it (and what followed) again
                            consumer.rewind(records[index:])
                            yield None
                            break
                        consumer.commit_record(record)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


TRIGGERS = (Trigger, RealtimeTrigger)
