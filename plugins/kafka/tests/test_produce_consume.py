"""Produce and Consume against a real Kafka-protocol broker (Tansu), through kafka-python."""

from __future__ import annotations

import json
import struct
import time
from typing import Any

import pytest
from kafka_support import Broker, FakeSchemaRegistry, free_port
from roost import TaskError
from roost.testing import run_task
from roost_kafka.tasks import Consume, Produce

ORDER_SCHEMA = json.dumps({
    "type": "record", "name": "Order", "namespace": "io.roost.test",
    "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"},
               {"name": "price", "type": ["null", "double"], "default": None}],
})  # fmt: skip


def lines(result: Any) -> list[dict[str, Any]]:
    data = result.context.read_file(result.outputs["uri"]).decode()
    return [json.loads(line) for line in data.splitlines()]


def consume(broker: Broker, topic: str, **props: Any) -> Any:
    props.setdefault("pollDuration", "PT1S")
    return run_task(Consume, properties=broker.properties, topic=topic, **props)


def test_produce_then_consume_strings_with_keys_headers_and_timestamps(broker: Broker) -> None:
    topic = broker.topic(partitions=2)
    sent = run_task(
        Produce, properties=broker.properties, topic=topic,
        **{"from": [
            {"key": "k1", "value": "hello", "headers": {"x-trace": "abc"}, "timestamp": "2026-01-31T10:00:00Z"},
            {"key": "k2", "value": "world", "partition": 1, "headers": [{"a": "1"}, {"a": "2"}]},
            {"value": {"not": "a string"}},
        ]},
    )  # fmt: skip
    assert sent.outputs == {"messagesCount": 3}
    got = consume(broker, topic)
    assert got.outputs["messagesCount"] == 3
    messages = sorted(lines(got), key=lambda m: (m["partition"], m["offset"]))
    by_value = {m["value"]: m for m in messages}
    assert by_value["hello"]["key"] == "k1"
    assert by_value["hello"]["headers"] == [{"x-trace": "abc"}]
    assert by_value["hello"]["timestamp"] == "2026-01-31T10:00:00.000Z"
    assert by_value["world"]["partition"] == 1 and by_value["world"]["headers"] == [{"a": "1"}, {"a": "2"}]
    assert by_value['{"not": "a string"}']["key"] is None  # a map sent as STRING is its JSON text
    assert {m["topic"] for m in messages} == {topic}
    metrics = got.context.metrics
    assert [(m["name"], m["value"], m["tags"]) for m in metrics] == [("records", 3, {"topic": topic})]


def test_numbers_uuid_and_bytes_use_javas_encodings(broker: Broker) -> None:
    topic = broker.topic()
    run_task(Produce, properties=broker.properties, topic=topic, keySerializer="LONG", valueSerializer="DOUBLE",
             **{"from": {"key": 42, "value": 2.5}})  # fmt: skip
    (record,) = broker.raw(topic, 1)
    assert record.key == struct.pack(">q", 42) and record.value == struct.pack(">d", 2.5)
    got = consume(broker, topic, keyDeserializer="LONG", valueDeserializer="DOUBLE")
    assert [(m["key"], m["value"]) for m in lines(got)] == [(42, 2.5)]
    other = broker.topic()
    run_task(Produce, properties=broker.properties, topic=other, keySerializer="UUID", valueSerializer="BYTES",
             **{"from": {"key": "9f1c2d3e-0000-4000-8000-000000000001", "value": "AAEC/w=="}})  # fmt: skip
    (record,) = broker.raw(other, 1)
    assert record.value == b"\x00\x01\x02\xff"
    got = consume(broker, other, keyDeserializer="UUID", valueDeserializer="BYTES")
    assert lines(got)[0]["value"] == "AAEC/w=="


def test_json_values_and_a_record_that_is_not_json(broker: Broker) -> None:
    topic = broker.topic()
    run_task(Produce, properties=broker.properties, topic=topic, valueSerializer="JSON",
             **{"from": [{"value": {"id": 1, "tags": ["a"]}}]})  # fmt: skip
    broker.send(topic, b"{broken")
    run_task(Produce, properties=broker.properties, topic=topic, valueSerializer="JSON",
             **{"from": [{"value": {"id": 2}}]})  # fmt: skip
    broken_at = next(r.offset for r in broker.raw(topic, 3) if r.value == b"{broken")
    with pytest.raises(TaskError) as err:
        consume(broker, topic, valueDeserializer="JSON")
    assert f"record {topic}/0@{broken_at}" in str(err.value) and "not valid JSON" in str(err.value)
    skipped = consume(broker, topic, valueDeserializer="JSON", onSerdeError={"type": "SKIPPED"})
    assert [m["value"] for m in lines(skipped)] == [{"id": 1, "tags": ["a"]}, {"id": 2}]
    assert any("not deserialized" in m for m in skipped.messages)
    stored = consume(broker, topic, valueDeserializer="JSON", onSerdeError={"type": "STORE"})
    raw = stored.context.read_file(stored.outputs["serdeErrorsUri"]).decode()
    assert json.loads(raw)["offset"] == broken_at and json.loads(raw)["value"] == "e2Jyb2tlbg=="
    dlq = broker.topic()
    consume(broker, topic, valueDeserializer="JSON", onSerdeError={"type": "DLQ", "topic": dlq})
    assert [r.value for r in broker.raw(dlq, 1)] == [b"{broken"]


def test_avro_through_a_schema_registry_in_confluents_wire_format(
    broker: Broker, registry: FakeSchemaRegistry
) -> None:
    topic = broker.topic()
    serde = {"schema.registry.url": registry.url}
    run_task(Produce, properties=broker.properties, serdeProperties=serde, topic=topic, valueSerializer="AVRO",
             valueAvroSchema=ORDER_SCHEMA,
             **{"from": [{"key": "o1", "value": {"id": 1, "item": "pen", "price": 1.5}},
                         {"key": "o2", "value": {"id": 2, "item": "ink", "price": None}}]})  # fmt: skip
    records = broker.raw(topic, 2)
    schema_id = registry.subjects[f"{topic}-value"][-1]
    assert all(r.value[:5] == b"\x00" + struct.pack(">I", schema_id) for r in records)
    got = consume(broker, topic, serdeProperties=serde, valueDeserializer="AVRO")
    assert [m["value"] for m in lines(got)] == [{"id": 1, "item": "pen", "price": 1.5},
                                                {"id": 2, "item": "ink", "price": None}]  # fmt: skip
    # without a schema in the task, the subject's latest schema is used
    run_task(Produce, properties=broker.properties, serdeProperties=serde, topic=topic, valueSerializer="AVRO",
             **{"from": {"value": {"id": 3, "item": "cap", "price": 2.0}}})  # fmt: skip
    assert (
        lines(consume(broker, topic, serdeProperties=serde, valueDeserializer="AVRO"))[-1]["value"]["id"] == 3
    )


def test_avro_with_an_inline_schema_and_no_registry(broker: Broker) -> None:
    topic = broker.topic()
    run_task(Produce, properties=broker.properties, topic=topic, valueSerializer="AVRO", valueAvroSchema=ORDER_SCHEMA,
             **{"from": {"value": {"id": 7, "item": "pad", "price": None}}})  # fmt: skip
    got = consume(broker, topic, valueDeserializer="AVRO", valueAvroSchema=ORDER_SCHEMA)
    assert lines(got)[0]["value"] == {"id": 7, "item": "pad", "price": None}


def test_a_bad_message_aborts_the_whole_transaction(broker: Broker, registry: FakeSchemaRegistry) -> None:
    topic = broker.topic()
    with pytest.raises(TaskError) as err:
        run_task(Produce, properties=broker.properties, topic=topic, valueSerializer="AVRO",
                 valueAvroSchema=ORDER_SCHEMA,
                 **{"from": [{"value": {"id": 1, "item": "ok"}}, {"value": {"id": "x", "item": 3}}]})  # fmt: skip
    assert "message 1" in str(err.value) and "Avro schema" in str(err.value)
    assert broker.raw(topic, 0) == []  # the first message was never committed
    with pytest.raises(TaskError, match="not a valid Avro schema"):
        run_task(Produce, properties=broker.properties, topic=topic, valueSerializer="AVRO",
                 valueAvroSchema='{"type": "record"}', **{"from": {"value": {}}})  # fmt: skip
    with pytest.raises(TaskError, match=r"Schema registry error .*Subject .* not found"):
        run_task(Produce, properties=broker.properties, serdeProperties={"schema.registry.url": registry.url},
                 topic=topic, valueSerializer="AVRO", **{"from": {"value": {"id": 1}}})  # fmt: skip


def test_a_consumer_group_reads_only_what_it_has_not_committed(broker: Broker) -> None:
    topic = broker.topic()
    run_task(
        Produce, properties=broker.properties, topic=topic, **{"from": [{"value": f"m{i}"} for i in range(5)]}
    )
    first = consume(broker, topic, groupId="readers", maxRecords=2, pollDuration="PT2S")
    assert first.outputs["messagesCount"] >= 2
    rest = consume(broker, topic, groupId="readers", pollDuration="PT2S")
    assert [m["value"] for m in lines(first) + lines(rest)] == [f"m{i}" for i in range(5)]
    assert consume(broker, topic, groupId="readers", pollDuration="PT2S").outputs["messagesCount"] == 0
    # another group, and no group at all, still read everything
    assert consume(broker, topic, groupId="others", pollDuration="PT2S").outputs["messagesCount"] == 5
    assert consume(broker, topic).outputs["messagesCount"] == 5


def test_header_filters_since_and_a_file_of_messages_produced_again(broker: Broker) -> None:
    topic = broker.topic()
    broker.send(topic, b"old", headers=[("kind", b"a")])
    time.sleep(0.05)
    cut = time.time()
    time.sleep(0.05)
    broker.send(topic, b"new-a", headers=[("kind", b"a")])
    broker.send(topic, b"new-b", headers=[("kind", b"b")])
    filtered = consume(broker, topic, headerFilters={"kind": "a"})
    assert [m["value"] for m in lines(filtered)] == ["old", "new-a"]
    from datetime import UTC, datetime

    since = datetime.fromtimestamp(cut, UTC).isoformat()
    assert [m["value"] for m in lines(consume(broker, topic, since=since))] == ["new-a", "new-b"]
    # a message's own topic wins over the task's (as in Kestra): Consume's file goes back to its topics
    again = run_task(Produce, properties=broker.properties, topic="ignored", runtime=filtered.context.runtime,
                     **{"from": filtered.outputs["uri"]})  # fmt: skip
    assert again.outputs == {"messagesCount": 2}
    assert [(r.value, r.headers) for r in broker.raw(topic, 5)][3:] == [(b"old", [("kind", b"a")]),
                                                                      (b"new-a", [("kind", b"a")])]  # fmt: skip


def test_an_unreachable_broker_and_a_missing_topic_fail_clearly(broker: Broker) -> None:
    dead = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "bootstrap.timeout.ms": "3000"}
    started = time.monotonic()
    with pytest.raises(TaskError, match=r"cannot connect to Kafka at 127\.0\.0\.1:\d+"):
        run_task(Produce, properties=dead, topic="t", **{"from": {"value": "x"}})
    with pytest.raises(TaskError, match=r"cannot connect to Kafka at 127\.0\.0\.1:\d+"):
        run_task(Consume, properties=dead, topic="t")
    assert time.monotonic() - started < 30
    with pytest.raises(TaskError, match="does not exist"):
        consume(broker, "no-such-topic")
    with pytest.raises(TaskError, match="bootstrap.servers"):
        run_task(Consume, properties={"client.id": "x"}, topic="t")


def test_properties_are_typed_for_kafka_python(tmp_path: Any) -> None:
    from kafka import KafkaConsumer
    from roost_kafka.connection import client_config

    config = client_config(
        {"bootstrap.servers": "a:1, b:2", "session.timeout.ms": "6000", "check.crcs": "false",
         "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256",
         "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p\\"w";',
         "ssl.endpoint.identification.algorithm": "", "some.java.only": "x"},
        KafkaConsumer.DEFAULT_CONFIG, tmp_path,
    )  # fmt: skip
    assert config["bootstrap_servers"] == ["a:1", "b:2"]
    assert config["session_timeout_ms"] == 6000 and config["check_crcs"] is False
    assert config["sasl_plain_username"] == "u" and config["sasl_plain_password"] == 'p"w'
    assert config["sasl_mechanism"] == "SCRAM-SHA-256" and config["ssl_check_hostname"] is False
    assert "some_java_only" not in config
    with pytest.raises(TaskError, match="session.timeout.ms"):
        client_config(
            {"bootstrap.servers": "a:1", "session.timeout.ms": "soon"}, KafkaConsumer.DEFAULT_CONFIG, tmp_path
        )
