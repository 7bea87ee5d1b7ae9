"""Hook implementations only: task classes are imported inside the hook body."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_argocd import tasks

    register(*tasks.TASKS)
