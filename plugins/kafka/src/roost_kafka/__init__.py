"""Roost's Kafka plugin: Produce, Consume, Trigger and RealtimeTrigger on kafka-python."""
