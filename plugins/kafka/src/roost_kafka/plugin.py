"""Hook implementations of the Kafka plugin (kafka-python is imported only when a type is used)."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_kafka import tasks

    register(*tasks.TASKS)


@hookimpl
def register_trigger_types(register):
    from roost_kafka import triggers

    register(*triggers.TRIGGERS)
