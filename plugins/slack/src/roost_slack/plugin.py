"""Hook implementations only: task and trigger classes are imported inside the hook bodies."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_slack import tasks

    register(*tasks.TASKS)


@hookimpl
def register_trigger_types(register):
    from roost_slack import trigger

    register(trigger.Trigger)
