"""Hook implementations of the MAAS plugin (no heavy imports at discovery time)."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_maas import tasks

    register(*tasks.TASKS)
