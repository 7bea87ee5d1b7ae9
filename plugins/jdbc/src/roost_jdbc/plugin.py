"""Hook implementations of the JDBC plugin (no heavy imports at module level)."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_jdbc import tasks

    register(*tasks.TASKS)
