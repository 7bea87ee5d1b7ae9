"""Ansible stdout callback: ansible-runner's ``awx_display``, with each event's end marker ending its line.

``awx_display`` frames every displayed event between two escape-sequence
markers; the closing marker follows the text's newline, so it opens the next
line. Task runners read output line by line, which would hold an event back
until the next line arrives (a ``TASK [...]`` banner stays unseen for as long
as the task runs). This wrapper loads ansible-runner's module unchanged from
``../ansible_runner/awx_display.py`` and only writes a newline after the
closing marker; ansible-runner's ``OutputEventFilter`` reads the stream as before.
"""

from __future__ import annotations

import importlib.util
import os
import sys

DOCUMENTATION = """
    name: roost_display
    short_description: ansible-runner's event dispatcher (awx_display), line-terminated
    description:
        - Loads ansible-runner's awx_display callback and ends the line after each event marker.
    type: stdout
    extends_documentation_fragment:
      - default_callback
    requirements:
      - Set as stdout in config
"""

_MODULE = "roost_ansible_runner_awx_display"


def _load_awx_display():
    module = sys.modules.get(_MODULE)
    if module is not None:
        return module
    path = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), os.pardir, "ansible_runner", "awx_display.py"
    )
    spec = importlib.util.spec_from_file_location(_MODULE, os.path.normpath(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module
    spec.loader.exec_module(module)

    dump_end = module.EventContext.dump_end

    def dump_end_line(self, fileobj):
        dump_end(self, fileobj)
        fileobj.write("\n")
        fileobj.flush()

    module.EventContext.dump_end = dump_end_line
    return module


_awx = _load_awx_display()


class CallbackModule(_awx.CallbackModule):
    CALLBACK_NAME = "roost_display"
