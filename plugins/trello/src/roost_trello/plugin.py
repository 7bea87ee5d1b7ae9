"""Hook implementations only: task and trigger classes are imported inside the hook bodies."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_trello import cards

    register(*cards.TASKS)


@hookimpl
def register_trigger_types(register):
    from roost_trello import cards

    register(*cards.TRIGGERS)
