"""What Kafka's tasks and triggers share: the connection properties, the consumer options, and a
consumption that writes records to a file (never all in memory) and commits only when told."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from roost import Dynamic, Model, TaskError

from roost_kafka.connection import client_config
from roost_kafka.serde import Codec, SchemaRegistry, SerdeError, SerdeType

GroupType = Literal["CONSUMER", "SHARE"]
AcknowledgeType = Literal["ACCEPT", "RELEASE", "REJECT", "RENEW"]
SHARE_UNSUPPORTED = (
    "groupType SHARE (Kafka share groups, KIP-932) is not supported: kafka-python, the client this plugin uses, "
    "has no share consumer; use groupType CONSUMER (a consumer group)"
)


class OnSerdeError(Model):
    """What to do with a record whose key or value cannot be deserialized."""

    type: Dynamic[Literal["SKIPPED", "DLQ", "STORE"]] = "SKIPPED"
    """SKIPPED: leave it out (logged); DLQ: send it, bytes untouched, to ``topic``; STORE: write it (base64) to
    the file of the ``serdeErrorsUri`` output."""
    topic: Dynamic[str] | None = None
    """Dead-letter topic, for DLQ."""


class KafkaConnection(Model):
    """Connection to the cluster and serde settings."""

    properties: Dynamic[dict[str, Any]]
    """Kafka client properties (``bootstrap.servers`` at least; ``security.protocol``, ``sasl.*``, ``ssl.*``,
    ``session.timeout.ms``...), mapped onto kafka-python's settings."""
    serde_properties: Dynamic[dict[str, Any]] = Field(default_factory=dict)
    """Serde settings: ``schema.registry.url`` (a Confluent-compatible registry, for AVRO) and
    ``basic.auth.user.info`` (``user:password``)."""

    def registry(self, ctx: Any) -> SchemaRegistry | None:
        serde = {str(k): str(v) for k, v in (self.serde_properties or {}).items() if v is not None}
        url = serde.get("schema.registry.url")
        if not url:
            return None
        return SchemaRegistry(url.split(",")[0].strip(), serde.get("basic.auth.user.info"), ctx=ctx)


class ConsumerOptions(KafkaConnection):
    """Where to read from and how (Kestra's consumer properties)."""

    topic: Dynamic[str | list[str]] | None = None
    """Topic, or list of topics, to read."""
    topic_pattern: Dynamic[str] | None = None
    """Regular expression of the topics to read (needs ``groupId``)."""
    partitions: Dynamic[list[int]] | None = None
    """Read only these partitions of the topics (assigned, not subscribed)."""
    group_id: Dynamic[str] | None = None
    """Consumer group: read only what the group has not committed, and commit what was read."""
    group_type: Dynamic[GroupType] = "CONSUMER"
    """CONSUMER (a consumer group). SHARE (Kafka 4.2 share groups) is refused: kafka-python has no share consumer."""
    acknowledge_type: Dynamic[AcknowledgeType] = "ACCEPT"
    """Acknowledgement of SHARE groups; accepted for compatibility, unused with CONSUMER groups."""
    key_deserializer: Dynamic[SerdeType] = "STRING"
    """Serde of record keys."""
    value_deserializer: Dynamic[SerdeType] = "STRING"
    """Serde of record values."""
    key_avro_schema: Dynamic[str] | None = None
    """Avro schema of keys written without a schema registry (schemaless Avro)."""
    value_avro_schema: Dynamic[str] | None = None
    """Avro schema of values written without a schema registry (schemaless Avro)."""
    since: Dynamic[str] | None = None
    """ISO-8601 date: without a group, start at the first record at or after it (instead of the beginning)."""
    header_filters: Dynamic[dict[str, str]] | None = None
    """Keep only records whose headers have all these values (last header of a key wins, UTF-8)."""
    on_serde_error: OnSerdeError | None = None
    """What to do with a record that cannot be deserialized; without it, such a record fails the read."""

    @model_validator(mode="after")
    def _check_source(self) -> ConsumerOptions:
        if self.topic is None and self.topic_pattern is None:
            raise ValueError("one of 'topic' or 'topicPattern' is required")
        if self.topic is not None and self.topic_pattern is not None:
            raise ValueError("give either 'topic' or 'topicPattern', not both")
        if self.topic_pattern is not None and self.group_id is None:
            raise ValueError("'topicPattern' needs a 'groupId'")
        if self.group_type == "SHARE":
            raise ValueError(SHARE_UNSUPPORTED)
        return self


def render_fields(model: Any, ctx: Any) -> Any:
    """A trigger's ``Dynamic`` properties rendered and typed (tasks get this from the worker)."""
    update = {}
    for name, marker in type(model).dynamic_fields():
        value = getattr(model, name)
        if value is None:
            continue
        rendered = ctx.render(value)
        try:
            update[name] = marker.adapter.validate_python(rendered)
        except ValueError as exc:
            alias = type(model).model_fields[name].alias or name
            raise TaskError(
                f"property '{alias}' rendered to {rendered!r}, which is not valid: {exc}"
            ) from None
    return model.model_copy(update=update)


def message(record: Any, key: Any, value: Any) -> dict[str, Any]:
    """A record as Kestra's ``Message``: key, value, headers (one-entry maps), topic, partition, timestamp, offset."""
    stamp = datetime.fromtimestamp(record.timestamp / 1000, UTC) if record.timestamp is not None else None
    return {
        "key": key,
        "value": value,
        "headers": [
            {k: (v.decode("utf-8", "replace") if v is not None else None)} for k, v in record.headers or []
        ],
        "topic": record.topic,
        "partition": record.partition,
        "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z") if stamp else None,
        "offset": record.offset,
    }


@dataclass
class Batch:
    """What one consumption read: the file, counts per topic, the offsets to commit."""

    path: Path
    count: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    errors_path: Path | None = None


class Consumer:
    """A kafka-python consumer set up from :class:`ConsumerOptions` (rendered), used as a context manager."""

    def __init__(self, opts: ConsumerOptions, ctx: Any, workdir: Path) -> None:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        if opts.group_type == "SHARE":
            raise TaskError(SHARE_UNSUPPORTED)
        self.opts = opts
        self.ctx = ctx
        props = dict(opts.properties or {})
        self.group_id = opts.group_id or props.get("group.id") or None
        config = client_config(props, KafkaConsumer.DEFAULT_CONFIG, workdir, ctx.logger)
        config.setdefault("enable_auto_commit", False)  # commits are ours: after the file is stored
        config.setdefault("isolation_level", "read_committed")  # as Kestra: committed transactions only
        self.workdir = workdir
        policy = opts.on_serde_error
        self.on_error: tuple[str, str | None] | None = None
        if policy is not None:
            kind = str(ctx.render(policy.type))
            if kind not in ("SKIPPED", "DLQ", "STORE"):
                raise TaskError(f"onSerdeError.type: expected SKIPPED, DLQ or STORE, got {kind!r}")
            topic = ctx.render(policy.topic) if policy.topic else None
            if kind == "DLQ" and not topic:
                raise TaskError("onSerdeError: type DLQ needs a topic")
            self.on_error = (kind, topic)
        registry = opts.registry(ctx)
        try:
            self.key = Codec(
                opts.key_deserializer, is_key=True, schema=opts.key_avro_schema, registry=registry
            )
            self.value = Codec(
                opts.value_deserializer, is_key=False, schema=opts.value_avro_schema, registry=registry
            )
        except SerdeError as exc:
            raise TaskError(str(exc)) from None
        self.servers = ",".join(config["bootstrap_servers"])
        try:
            self.consumer = KafkaConsumer(group_id=self.group_id, **config)
        except KafkaError as exc:
            raise TaskError(f"cannot connect to Kafka at {self.servers}: {exc}") from None
        self._dlq: Any = None
        self._assign()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.consumer.close(autocommit=False)
        finally:
            if self._dlq is not None:
                self._dlq.close()

    def _topics(self) -> list[str]:
        topic = self.opts.topic
        return [topic] if isinstance(topic, str) else list(topic or [])

    def _assign(self) -> None:
        from kafka import TopicPartition

        opts, consumer = self.opts, self.consumer
        if opts.topic_pattern is not None:
            consumer.subscribe(pattern=opts.topic_pattern)
            return
        topics = self._topics()
        if opts.partitions:
            consumer.assign([TopicPartition(t, p) for t in topics for p in opts.partitions])
        elif self.group_id:
            consumer.subscribe(topics)
            return
        else:
            found = []
            for topic in topics:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    raise TaskError(f"topic {topic!r} does not exist on Kafka at {self.servers}")
                found += [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(found)
        if not self.group_id:
            assigned = list(consumer.assignment())
            if opts.since:
                when = datetime.fromisoformat(opts.since.replace("Z", "+00:00"))
                stamp = int(when.timestamp() * 1000)
                offsets = consumer.offsets_for_times(dict.fromkeys(assigned, stamp))
                for tp in assigned:
                    found_at = offsets.get(tp)
                    if found_at is None:
                        consumer.seek_to_end(tp)
                    else:
                        consumer.seek(tp, found_at.offset)
            else:
                consumer.seek_to_beginning(*assigned)

    # -- reading -------------------------------------------------------------------------------------
    def poll(self, seconds: float) -> list[Any]:
        """Records of one poll, in partition order (at most ``seconds`` of waiting)."""
        from kafka.errors import KafkaError

        try:
            polled = self.consumer.poll(timeout_ms=int(seconds * 1000))
        except KafkaError as exc:
            raise TaskError(f"Kafka at {self.servers} failed while reading: {exc}") from None
        return [record for records in polled.values() for record in records]

    def assigned(self) -> bool:
        return bool(self.consumer.assignment())

    def accepts(self, record: Any) -> bool:
        filters = self.opts.header_filters
        if not filters:
            return True
        last: dict[str, str] = {}
        for key, raw in record.headers or []:
            last[key] = (raw or b"").decode("utf-8", "replace")
        return all(last.get(k) == v for k, v in filters.items())

    def decode(self, record: Any) -> dict[str, Any] | None:
        """The record as a message; ``None`` when it cannot be deserialized and ``onSerdeError`` drops it."""
        try:
            return message(record, self.key.decode(record.key), self.value.decode(record.value))
        except SerdeError as exc:
            where = f"record {record.topic}/{record.partition}@{record.offset}"
            if self.on_error is None:
                raise TaskError(f"{where}: {exc} (set onSerdeError to skip such records)") from None
            kind, topic = self.on_error
            self.ctx.logger.warning("%s not deserialized (onSerdeError %s): %s", where, kind, exc)
            if kind == "DLQ" and topic:
                self._to_dlq(record, topic)
            return None

    def _to_dlq(self, record: Any, topic: str) -> None:
        from kafka import KafkaProducer

        if self._dlq is None:
            config = client_config(dict(self.opts.properties), KafkaProducer.DEFAULT_CONFIG, self.workdir)
            self._dlq = KafkaProducer(**config)
        self._dlq.send(topic, key=record.key, value=record.value, headers=list(record.headers or []))
        self._dlq.flush()

    def read_batch(self, path: Path, poll: timedelta, max_records: int | None, max_duration: timedelta | None,
                   killed: Any = lambda: False) -> Batch:  # fmt: skip
        """Read until a poll brings nothing, ``maxRecords`` or ``maxDuration``; write messages as JSON lines."""
        batch = Batch(path)
        started = time.monotonic()
        join_deadline = started + max(60.0, poll.total_seconds())  # a group join may outlast one poll
        with path.open("w", encoding="utf-8") as out, _ErrorFile(path) as errors:
            while not killed():
                records = self.poll(poll.total_seconds())
                for record in records:
                    if not self.accepts(record):
                        continue
                    msg = self.decode(record)
                    if msg is None:
                        batch.errors += 1
                        if self.on_error is not None and self.on_error[0] == "STORE":
                            errors.write(record)
                        continue
                    out.write(json.dumps(msg, separators=(",", ":"), default=str) + "\n")
                    batch.count += 1
                    batch.per_topic[record.topic] = batch.per_topic.get(record.topic, 0) + 1
                if not records and (self.assigned() or time.monotonic() > join_deadline):
                    break
                if max_records is not None and batch.count >= max_records:
                    break
                if max_duration is not None and time.monotonic() - started > max_duration.total_seconds():
                    break
            batch.errors_path = errors.path if errors.count else None
        return batch

    def commit(self) -> None:
        """Commit what was read (nothing to do without a group)."""
        from kafka.errors import KafkaError

        if not self.group_id:
            return
        try:
            self.consumer.commit()
        except KafkaError as exc:
            raise TaskError(f"Kafka at {self.servers} refused the offsets commit: {exc}") from None

    def commit_record(self, record: Any) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        self.consumer.commit(
            {TopicPartition(record.topic, record.partition): OffsetAndMetadata(record.offset + 1, "", -1)}
        )

    def rewind(self, records: list[Any]) -> None:
        """Read ``records`` again from the next poll on (their executions could not be started)."""
        from kafka import TopicPartition

        first: dict[tuple[str, int], int] = {}
        for record in records:
            first.setdefault((record.topic, record.partition), record.offset)
        for (topic, partition), offset in first.items():
            self.consumer.seek(TopicPartition(topic, partition), offset)


class _ErrorFile:
    """The STORE file of undecodable records (raw key and value, base64), created on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.stem + "-serde-errors.ion")
        self.count = 0
        self._out: Any = None

    def __enter__(self) -> _ErrorFile:
        return self

    def write(self, record: Any) -> None:
        import base64

        if self._out is None:
            self._out = self.path.open("w", encoding="utf-8")
        raw = {
            "key": base64.b64encode(record.key).decode() if record.key is not None else None,
            "value": base64.b64encode(record.value).decode() if record.value is not None else None,
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
        }  # fmt: skip
        self._out.write(json.dumps(raw) + "\n")
        self.count += 1

    def __exit__(self, *exc: Any) -> None:
        if self._out is not None:
            self._out.close()
