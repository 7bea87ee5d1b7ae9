"""The core's standard checks of every type, and Kestra's documented examples."""

from __future__ import annotations

import pytest
from roost.flow.build import FlowInvalid, parse_flow
from roost.plugins import Plugins
from roost.testing.suite import TypeSuite
from roost_kafka import tasks, triggers

CONSUME = """
id: kafka_consume
namespace: company.team
tasks:
  - id: consume
    type: io.kestra.plugin.kafka.Consume
    topic: test_kestra
    properties:
      bootstrap.servers: localhost:9092
    serdeProperties:
      schema.registry.url: http://localhost:8085
    keyDeserializer: STRING
    valueDeserializer: AVRO
  - id: produce
    type: io.kestra.plugin.kafka.Produce
    properties:
      bootstrap.servers: localhost:9092
    topic: example_topic
    from:
      key: "{{ execution.id }}"
      value: "Hello, World!"
      timestamp: "{{ execution.startDate }}"
      headers:
        x-header: some value
    keySerializer: STRING
    valueSerializer: STRING
"""

TRIGGERS = """
id: kafka_triggers
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.value ?? trigger.uri }}"
triggers:
  - id: trigger
    type: io.kestra.plugin.kafka.Trigger
    topic: test_kestra
    properties:
      bootstrap.servers: localhost:9092
    serdeProperties:
      schema.registry.url: http://localhost:8085
    valueDeserializer: AVRO
    interval: PT30S
    maxRecords: 5
    groupId: kafkaConsumerGroupId
  - id: realtime_trigger
    type: io.kestra.plugin.kafka.RealtimeTrigger
    topic: test_kestra
    properties:
      bootstrap.servers: localhost:9092
    groupId: kafkaConsumerGroupId
"""


class TestKafkaTypes(TypeSuite):
    types = (*tasks.TASKS, *triggers.TRIGGERS)
    examples = [CONSUME, TRIGGERS]


def test_share_groups_are_refused_at_deploy_time_with_the_reason() -> None:
    flow = TRIGGERS.replace(
        "    groupId: kafkaConsumerGroupId\n", "    groupId: g\n    groupType: SHARE\n", 1
    )
    with pytest.raises(FlowInvalid) as err:
        parse_flow(flow, Plugins())
    text = str(err.value)
    assert "triggers[0]" in text and "share groups" in text and "kafka-python" in text
    assert "line" in text


def test_a_consume_needs_a_topic_or_a_pattern() -> None:
    flow = CONSUME.replace("    topic: test_kestra\n", "", 1)
    with pytest.raises(FlowInvalid, match="topic.*topicPattern"):
        parse_flow(flow, Plugins())
