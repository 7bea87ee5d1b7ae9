"""Kafka through the engine: a flow that produces and consumes, the batch Trigger and the RealtimeTrigger."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_support import Broker
from roost.engine.engine import Engine
from roost.engine.scheduler import Scheduler
from roost.store.db import Store

NS = "company.kafka"


def props(broker: Broker, indent: int) -> str:
    pad = " " * indent
    return "".join(f'{pad}{k}: "{v}"\n' for k, v in broker.properties.items())


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_a_flow_produces_json_and_reads_it_back(broker: Broker, run_flow: Any) -> None:
    topic = broker.topic()
    flow = f"""id: kafka_roundtrip
namespace: {NS}
tasks:
  - id: produce
    type: io.kestra.plugin.kafka.Produce
    topic: {topic}
    properties:
{props(broker, 6)}    valueSerializer: JSON
    from:
      - key: "{{{{ execution.id }}}}"
        value: {{"order": 1, "flow": "{{{{ flow.id }}}}"}}
        headers:
          source: roost
  - id: consume
    type: io.kestra.plugin.kafka.Consume
    topic: {topic}
    properties:
{props(broker, 6)}    valueDeserializer: JSON
    pollDuration: PT1S
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "read {{{{ outputs.consume.messagesCount }}}} from {{{{ outputs.consume.uri }}}}"
"""
    ex = run_flow(flow)
    assert ex.state.current == "SUCCESS", ex.to_dict()
    consume = next(tr for tr in ex.task_runs if tr.task_id == "consume")
    assert consume.outputs["messagesCount"] == 1
    (record,) = broker.raw(topic, 1)
    assert json.loads(record.value) == {"order": 1, "flow": "kafka_roundtrip"}
    assert record.key == ex.id.encode()


@pytest.fixture
def scheduled(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(Store.sqlite(tmp_path / "home"), tmp_path / "home", workers=2)
    engine.start()
    scheduler = Scheduler(engine, refresh=0.2).start()
    try:
        yield engine
    finally:
        scheduler.stop()
        engine.stop()
        engine.store.close()


def executions(engine: Engine, flow_id: str) -> list[dict[str, Any]]:
    found, _ = engine.store.search_executions("main", namespace=NS, flow_id=flow_id, prefix=False, size=100)
    return found


def committed(broker: Broker, group: str, topic: str) -> int:
    """The group's committed offset of partition 0 (an offset fetch; the group is not joined)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, 0)) or -1
    finally:
        consumer.close()


def test_the_trigger_starts_one_execution_per_batch_and_commits_after(
    broker: Broker, scheduled: Engine
) -> None:
    topic = broker.topic()
    broker.send(topic, b"a", b"b", b"c")
    scheduled.deploy(f"""id: batches
namespace: {NS}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.messagesCount }}}} at {{{{ trigger.uri }}}}"
triggers:
  - id: batch
    type: io.kestra.plugin.kafka.Trigger
    topic: {topic}
    groupId: batchers
    properties:
{props(broker, 6)}    pollDuration: PT1S
    interval: PT1S
""")
    (first,) = wait_for(lambda: executions(scheduled, "batches"))
    variables = first["trigger"]["variables"]
    assert variables["messagesCount"] == 3
    assert f"/executions/{first['id']}/trigger/batch/" in variables["uri"]
    stored = scheduled.runtime("main").storage.get(variables["uri"]).decode().splitlines()
    assert [json.loads(line)["value"] for line in stored] == ["a", "b", "c"]
    wait_for(lambda: committed(broker, "batchers", topic) == 3)
    time.sleep(3)  # a few more polls find nothing new: no empty executions
    assert len(executions(scheduled, "batches")) == 1
    broker.send(topic, b"d")
    wait_for(lambda: len(executions(scheduled, "batches")) == 2)


def test_the_realtime_trigger_starts_one_execution_per_message(broker: Broker, scheduled: Engine) -> None:
    topic = broker.topic()
    flow = f"""id: per_message
namespace: {NS}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.value.order }}}} from {{{{ trigger.topic }}}}"
triggers:
  - id: realtime
    type: io.kestra.plugin.kafka.RealtimeTrigger
    topic: {topic}
    groupId: listeners
    valueDeserializer: JSON
    properties:
{props(broker, 6)}"""
    scheduled.deploy(flow)
    for order in (1, 2, 3):
        broker.send(topic, json.dumps({"order": order}).encode(), key=b"k")
    found = wait_for(
        lambda: len(executions(scheduled, "per_message")) == 3 and executions(scheduled, "per_message")
    )
    assert sorted(e["trigger"]["variables"]["value"]["order"] for e in found) == [1, 2, 3]
    assert {e["trigger"]["variables"]["key"] for e in found} == {"k"}
    wait_for(lambda: committed(broker, "listeners", topic) == 3)
    ended = wait_for(
        lambda: all(e["state"]["current"] == "SUCCESS" for e in executions(scheduled, "per_message"))
    )
    assert ended
    # a new revision restarts the consumer, which resumes after the committed offset
    scheduled.deploy(flow.replace("from {{ trigger.topic }}", "(v2)"))
    broker.send(topic, json.dumps({"order": 4}).encode())
    wait_for(lambda: len(executions(scheduled, "per_message")) == 4)
    time.sleep(2)
    assert len(executions(scheduled, "per_message")) == 4  # nothing delivered twice
