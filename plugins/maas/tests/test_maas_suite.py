"""The core's standard suite: schemas render, every type and property is described, and the
YAML examples of the README validate as flows."""

from __future__ import annotations

import re
from pathlib import Path

from roost.testing.suite import TypeSuite
from roost_maas import tasks

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_examples() -> list[str]:
    found = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    assert found, "the README has no YAML example"
    return found


class TestMaasTypes(TypeSuite):
    types = tasks.TASKS
    examples = readme_examples()
