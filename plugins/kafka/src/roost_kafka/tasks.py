"""Kafka tasks: Produce and Consume (Kestra's ``io.kestra.plugin.kafka``)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field
from roost import Dynamic, Output, RunContext, Task, TaskError

from roost_kafka.base import Consumer, ConsumerOptions, KafkaConnection
from roost_kafka.connection import client_config
from roost_kafka.serde import Codec, SerdeError, SerdeType


class Produce(KafkaConnection, Task, type="io.kestra.plugin.kafka.Produce"):
    """Send messages to a Kafka topic.

    ``from`` is one message (a map with ``key``, ``value``, ``topic``, ``partition``, ``timestamp``,
    ``headers``), a list of them, or the URI of an internal-storage file of such maps, one JSON (or Ion
    text of JSON values) per line — what Consume writes. Sends are transactional by default: all the
    messages, or none, become visible to ``read_committed`` consumers.
    """

    topic: Dynamic[str] | None = None
    """Topic to send to; a message's own ``topic`` wins."""
    from_: Dynamic[str | dict[str, Any] | list[dict[str, Any]]] = Field(alias="from")
    """The messages: a map, a list of maps, or an internal-storage URI of a file of maps (one per line)."""
    key_serializer: Dynamic[SerdeType] = "STRING"
    """Serde of the keys."""
    value_serializer: Dynamic[SerdeType] = "STRING"
    """Serde of the values."""
    key_avro_schema: Dynamic[str] | None = None
    """Avro schema of the keys (AVRO); with a schema registry it is registered under ``<topic>-key``."""
    value_avro_schema: Dynamic[str] | None = None
    """Avro schema of the values (AVRO); with a schema registry it is registered under ``<topic>-value``."""
    transactional: bool = True
    """Send all messages in one Kafka transaction (committed at the end, aborted on failure)."""

    class Out(Output):
        messages_count: int
        """Number of messages sent."""

    def run(self, ctx: RunContext) -> Produce.Out:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        config = client_config(
            dict(self.properties), KafkaProducer.DEFAULT_CONFIG, ctx.working_dir, ctx.logger
        )
        servers = ",".join(config["bootstrap_servers"])
        if self.transactional:
            config["transactional_id"] = f"roost-{uuid.uuid4()}"
            config["enable_idempotence"] = True
        registry = self.registry(ctx)
        try:
            key = Codec(self.key_serializer, is_key=True, schema=self.key_avro_schema, registry=registry)
            value = Codec(
                self.value_serializer, is_key=False, schema=self.value_avro_schema, registry=registry
            )
        except SerdeError as exc:
            raise TaskError(str(exc)) from None
        try:
            producer = KafkaProducer(**config)
        except KafkaError as exc:
            raise TaskError(f"cannot connect to Kafka at {servers}: {exc}") from None
        ctx.on_kill(lambda: producer.close(timeout=0))
        count = 0
        per_topic: dict[str, int] = {}
        try:
            if self.transactional:
                producer.init_transactions()
                producer.begin_transaction()
            records = self._records(ctx, producer, key, value, servers)
            if not isinstance(self.from_, str):  # given inline: all encoded before anything is sent
                records = iter(list(records))
            for topic, record in records:
                ctx.raise_if_killed()
                future = producer.send(topic, **record)
                if not self.transactional:
                    future.get(timeout=60)
                count += 1
                per_topic[topic] = per_topic.get(topic, 0) + 1
            if self.transactional:
                producer.commit_transaction()
            else:
                producer.flush()
        except KafkaError as exc:
            _abort(producer, self.transactional)
            raise TaskError(f"Kafka at {servers} refused the messages: {exc}") from None
        except BaseException:
            _abort(producer, self.transactional)
            raise
        finally:
            producer.close(timeout=5)
        for topic, n in per_topic.items():
            ctx.metric("records", n, topic=topic)
        return self.Out(messages_count=count)

    def _records(self, ctx: RunContext, producer: Any, key: Any, value: Any, servers: str) -> Any:
        """(topic, arguments of ``producer.send``) for each message, encoded; a bad one raises."""
        checked: set[str] = set()
        for index, msg in enumerate(self._messages(ctx)):
            if not isinstance(msg, dict):
                raise TaskError(
                    f"message {index}: expected a map with key/value/..., got {type(msg).__name__}"
                )
            topic = msg.get("topic") or self.topic
            if not topic:
                raise TaskError(f"message {index}: no topic (set 'topic', or 'topic' in the message)")
            if topic not in checked:  # a clear error for a missing topic, before anything is sent
                checked.add(topic)
                if not producer.partitions_for(topic):
                    raise TaskError(f"topic {topic!r} does not exist on Kafka at {servers}")
            try:
                yield (
                    topic,
                    {
                        "key": key.encode(msg.get("key"), topic),
                        "value": value.encode(msg.get("value"), topic),
                        "partition": msg.get("partition"),
                        "timestamp_ms": _timestamp(msg.get("timestamp")),
                        "headers": _headers(msg.get("headers")),
                    },
                )
            except SerdeError as exc:
                raise TaskError(f"message {index}: {exc}") from None

    def _messages(self, ctx: RunContext) -> Any:
        source = self.from_
        if isinstance(source, dict):
            yield source
        elif isinstance(source, list):
            yield from source
        else:
            if not str(source).startswith("kestra://"):
                raise TaskError(f"'from': expected a map, a list of maps or a kestra:// URI, got {source!r}")
            with ctx.open_file(str(source)).open(encoding="utf-8") as lines:
                for number, line in enumerate(lines, 1):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except ValueError as exc:
                            raise TaskError(
                                f"'from' file {source}, line {number}: not a JSON map ({exc})"
                            ) from None


def _abort(producer: Any, transactional: bool) -> None:
    if transactional:
        try:
            producer.abort_transaction()
        except Exception:  # the transaction may not have begun, or the broker is gone
            pass


def _timestamp(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return int(value)
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise TaskError(f"timestamp {value!r} is neither epoch milliseconds nor an ISO-8601 date") from None


def _headers(value: Any) -> list[tuple[str, bytes]] | None:
    if not value:
        return None
    pairs: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):  # Consume's form: a list of one-entry maps
        for item in value:
            if not isinstance(item, dict):
                raise TaskError(f"headers: expected a map or a list of one-entry maps, got {item!r}")
            pairs += list(item.items())
    else:
        raise TaskError(f"headers: expected a map or a list of one-entry maps, got {value!r}")
    return [(str(k), b"" if v is None else str(v).encode()) for k, v in pairs]


class Consume(ConsumerOptions, Task, type="io.kestra.plugin.kafka.Consume"):
    """Read messages from Kafka topics into a file of internal storage.

    Each message is one JSON line (``key``, ``value``, ``headers``, ``topic``, ``partition``,
    ``timestamp``, ``offset``) of an ``.ion`` file: messages are streamed to the file, never held in
    memory. Reading stops when a poll brings nothing, at ``maxRecords`` or after ``maxDuration``.
    With a ``groupId``, the group's offsets are committed only once the file is stored.
    """

    poll_duration: Dynamic[timedelta] = timedelta(seconds=5)
    """How long a poll waits for records; an empty poll ends the reading."""
    max_records: Dynamic[int] | None = None
    """Stop after about this many records (checked after each poll)."""
    max_duration: Dynamic[timedelta] | None = None
    """Stop after about this long (checked after each poll)."""

    class Out(Output):
        messages_count: int
        """Number of messages read."""
        uri: str
        """Internal-storage URI of the messages, one JSON map per line."""
        serde_errors_uri: str | None = None
        """With ``onSerdeError.type: STORE``: the records that could not be deserialized (raw, base64)."""

    def run(self, ctx: RunContext) -> Consume.Out:
        path = Path(ctx.working_dir) / f"{self.id}.ion"
        with Consumer(self, ctx, Path(ctx.working_dir)) as consumer:
            batch = consumer.read_batch(
                path, self.poll_duration, self.max_records, self.max_duration, ctx.killed
            )
            ctx.raise_if_killed()
            uri = ctx.put_file(path)
            errors_uri = ctx.put_file(batch.errors_path) if batch.errors_path else None
            consumer.commit()  # only now: the messages are safe in internal storage
        for topic, n in batch.per_topic.items():
            ctx.metric("records", n, topic=topic)
        ctx.logger.info(
            "read %d message(s)%s", batch.count, f", {batch.errors} not deserialized" if batch.errors else ""
        )
        return self.Out(messages_count=batch.count, uri=uri, serde_errors_uri=errors_uri)


TASKS = (Produce, Consume)
