"""Ansible vars plugin copied into the working folder when the task runs as a local process.

Interpreter discovery on a host reached through ``ansible_connection=local``
probes the worker machine's ``PATH`` (``python3.13``, ``python3.12``, ...), where
a stale shim or an interpreter without the standard library can come first.
This plugin puts the worker's own Python (``ROOST_ANSIBLE_PYTHON``) at the head
of ``ansible_interpreter_python_fallback`` for the ``all`` group, so local hosts
use the interpreter Ansible itself runs on, as Ansible already does for its
implicit localhost. Remote hosts do not have that path and discover as usual;
an explicit ``ansible_python_interpreter`` or ``ansible_interpreter_python_fallback``
anywhere in the inventory still wins.
"""

from __future__ import annotations

import os

from ansible import constants as C
from ansible.inventory.group import Group
from ansible.plugins.vars import BaseVarsPlugin

DOCUMENTATION = """
    name: roost_local_python
    short_description: Hosts on the local connection discover the worker's Python first
    description:
        - Prepends the path in the ROOST_ANSIBLE_PYTHON environment variable to ansible_interpreter_python_fallback.
"""

_FALLBACK = "ansible_interpreter_python_fallback"


def _default_fallback() -> list[str]:
    try:
        default = C.config.get_configuration_definition("INTERPRETER_PYTHON_FALLBACK").get("default")
    except Exception:
        default = None
    return list(default or ["python3", "/usr/bin/python3"])


class VarsModule(BaseVarsPlugin):
    REQUIRES_ENABLED = False

    def get_vars(self, loader, path, entities, cache=True):
        python = os.environ.get("ROOST_ANSIBLE_PYTHON")
        if not python:
            return {}
        if not isinstance(entities, list):
            entities = [entities]
        for entity in entities:
            if isinstance(entity, Group) and entity.name == "all" and _FALLBACK not in entity.vars:
                return {_FALLBACK: [python, *(p for p in _default_fallback() if p != python)]}
        return {}
