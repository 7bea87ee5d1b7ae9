"""Test helpers: small local inventories and playbooks (every host uses ``ansible_connection=local``)."""

from __future__ import annotations

import textwrap

TWO_HOSTS = textwrap.dedent(
    """\
    [web]
    web1 ansible_connection=local
    web2 ansible_connection=local ansible_host=127.0.0.1

    [web:vars]
    ansible_user=deploy
    ansible_password=never-in-assets
    """
)


def playbook(*tasks: str, hosts: str = "all", gather_facts: bool = False, raw: bool = True) -> str:
    """A one-play playbook; each task is a YAML snippet indented as a list item.

    Input files are rendered as Kestra expressions before they are written, so Ansible's own
    ``{{ }}`` templates are wrapped in ``{% raw %}`` as a Kestra user does (``raw=False`` for a
    task that is run without rendering).
    """
    body = "\n".join(textwrap.indent(textwrap.dedent(t).strip("\n"), "    ") for t in tasks)
    text = f"---\n- hosts: {hosts}\n  gather_facts: {str(gather_facts).lower()}\n  tasks:\n{body}\n"
    return f"{{% raw %}}{text}{{% endraw %}}" if raw and "{{" in text else text
