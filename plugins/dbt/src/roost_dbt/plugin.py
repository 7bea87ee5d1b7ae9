"""Hook implementations of the dbt plugin (heavy imports stay inside the hooks)."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_dbt import tasks

    register(*tasks.TASKS)
