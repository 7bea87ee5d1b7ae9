"""Hook implementations of the Beam plugin (apache-beam is imported only in the pipeline's subprocess)."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_beam import tasks

    register(*tasks.TASKS)
