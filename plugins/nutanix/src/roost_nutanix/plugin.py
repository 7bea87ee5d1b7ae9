"""Hook implementations of the Nutanix plugin (no heavy imports at discovery time)."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_nutanix import tasks

    register(*tasks.TASKS)
