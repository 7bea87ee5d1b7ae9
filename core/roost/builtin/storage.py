"""``io.kestra.plugin.core.storage.LocalFiles`` (deprecated): files written to and read from the working folder."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from roost import Dynamic, Output, RunContext, Task
from roost.scripts import collect_files, write_files


class LocalFilesOutput(Output):
    uris: dict[str, str] = Field(default_factory=dict)
    """The files matching ``outputs``, by path in the working folder, as internal-storage URIs."""


class LocalFiles(
    Task,
    type="io.kestra.plugin.core.storage.LocalFiles",
    aliases=("io.kestra.core.tasks.storages.LocalFiles",),
):
    """Deprecated: write ``inputs`` into the working folder and send the files matching ``outputs`` to storage.

    Inside a WorkingDirectory the folder is shared with the other tasks (use its ``inputFiles`` and
    ``outputFiles`` instead).
    """

    deprecated: ClassVar[str] = (
        "use the inputFiles and outputFiles of io.kestra.plugin.core.flow.WorkingDirectory"
    )

    inputs: Dynamic[dict[str, Any]] | str | None = None
    """Files to create: name to content (or a ``kestra://`` URI); a JSON map also works."""
    outputs: Dynamic[list[str]] | None = None
    """Glob patterns of the files to keep."""

    def run(self, ctx: RunContext) -> LocalFilesOutput:
        files: Any = self.inputs
        if isinstance(files, str):
            files = json.loads(files)
        write_files(ctx, ctx.working_dir, files or {})
        return LocalFilesOutput(uris=collect_files(ctx, ctx.working_dir, self.outputs or []))


TASKS = (LocalFiles,)
