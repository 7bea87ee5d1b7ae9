"""Shell and Python script tasks (``io.kestra.plugin.scripts.*``), run by a task runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic import Field

from roost import Dynamic, RunContext, ScriptTask

S = "io.kestra.plugin.scripts."


def _python_path_env() -> dict[str, str]:
    """Put this interpreter's folder first, so ``python`` and installed CLIs are the project's own."""
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


class ShellCommands(ScriptTask, type=S + "shell.Commands", aliases=("io.kestra.core.tasks.scripts.Bash",)):
    """Run shell commands."""

    commands: Dynamic[list[str]] = Field(min_length=1)
    """Commands, run one after the other (``set -e``)."""

    def default_image(self) -> str | None:
        return "ubuntu"


class ShellScript(ScriptTask, type=S + "shell.Script"):
    """Run a multi-line shell script."""

    script: Dynamic[str]
    """The script."""

    def script_commands(self, ctx: RunContext) -> list[str]:
        return [self.script]

    def default_image(self) -> str | None:
        return "ubuntu"


class PythonCommands(ScriptTask, type=S + "python.Commands"):
    """Run commands with Python available (``python script.py``...)."""

    commands: Dynamic[list[str]] = Field(min_length=1)
    """Commands to run."""

    def extra_env(self, ctx: RunContext, workdir: Path) -> dict[str, str]:
        return _python_path_env()

    def default_image(self) -> str | None:
        return "python"


class PythonScript(ScriptTask, type=S + "python.Script", aliases=("io.kestra.core.tasks.scripts.Python",)):
    """Run a Python script."""

    script: Dynamic[str]
    """Python source."""

    def prepare(self, ctx: RunContext, workdir: Path) -> None:
        (workdir / "__roost_script.py").write_text(self.script)

    def script_commands(self, ctx: RunContext) -> list[str]:
        return ["python __roost_script.py"]

    def extra_env(self, ctx: RunContext, workdir: Path) -> dict[str, str]:
        return _python_path_env()

    def default_image(self) -> str | None:
        return "python"


TASKS = (ShellCommands, ShellScript, PythonCommands, PythonScript)
