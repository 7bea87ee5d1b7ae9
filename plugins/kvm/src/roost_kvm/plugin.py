"""Roost hook implementations of the KVM plugin (hookimpls only; libvirt is imported lazily)."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_kvm import tasks

    register(*tasks.TASKS)
