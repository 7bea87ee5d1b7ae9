"""Hook implementations only: the task module (and ansible) is imported when the hook runs."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_ansible import tasks

    register(*tasks.TASKS)
