"""Hook implementations of the COBOL plugin (paramiko is imported only when a task runs)."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_cobol import tasks

    register(*tasks.TASKS)
