"""Hook implementations only: the task classes (and httpx) load when the hook runs."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_netbox import tasks

    register(*tasks.TASKS)
