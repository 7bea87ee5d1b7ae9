"""``roost plugins new NAME``: an installable plugin package with one task and a passing test."""

from __future__ import annotations

import re
from pathlib import Path

FILES = {
    "pyproject.toml": """[project]
name = "roost-plugin-{name}"
version = "0.1.0"
description = "Roost plugin: {title}."
requires-python = ">=3.11"
dependencies = ["roost"]

[project.entry-points.roost]
{name} = "roost_{module}.plugin"

[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/roost_{module}"]
""",
    "README.md": """# roost-plugin-{name}

{title} for Roost.

```yaml
id: example
namespace: company.team
tasks:
  - id: greet
    type: io.roost.{module}.Greet
    name: "{{{{ flow.id }}}}"
```

Test: `pip install -e . && pytest tests`.
""",
    "src/roost_{module}/__init__.py": '"""Roost plugin: {title}."""\n',
    "src/roost_{module}/plugin.py": '''"""Hook implementations only; heavy imports stay inside the hooks."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost_{module} import tasks

    register(*tasks.TASKS)
''',
    "src/roost_{module}/tasks.py": '''"""Task types of the {name} plugin."""

from __future__ import annotations

from roost import Dynamic, Output, RunContext, Task


class Greet(Task, type="io.roost.{module}.Greet"):
    """Greet someone by name."""

    name: Dynamic[str] = "world"
    """Who to greet."""

    class Out(Output):
        greeting: str
        """The greeting."""

    def run(self, ctx: RunContext) -> Greet.Out:
        ctx.logger.info("greeting %s", self.name)
        return self.Out(greeting=f"Hello, {{self.name}}!")


TASKS = (Greet,)
''',
    "tests/test_tasks.py": '''from roost.testing import run_task
from roost.testing.suite import TypeSuite

from roost_{module} import tasks

EXAMPLE = """
id: example
namespace: company.team
tasks:
  - id: greet
    type: io.roost.{module}.Greet
    name: "{{{{ flow.id }}}}"
"""


class TestTypes(TypeSuite):
    types = tasks.TASKS
    examples = [EXAMPLE]


def test_greet_renders_its_name():
    result = run_task(tasks.Greet, name="{{{{ flow.namespace }}}}")
    assert result.outputs == {{"greeting": "Hello, company.team!"}}
''',
}


def new_plugin(name: str, parent: Path) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise SystemExit(f"plugin name {name!r}: use lower-case letters, digits and dashes")
    module = name.replace("-", "_")
    root = parent / name
    if root.exists():
        raise SystemExit(f"{root} already exists")
    values = {"name": name, "module": module, "title": name.replace("-", " ").title()}
    for rel, template in FILES.items():
        path = root / rel.format(**values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values))
    return root
