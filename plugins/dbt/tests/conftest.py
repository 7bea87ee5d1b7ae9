"""Shared fixtures: one real dbt run of the acceptance flow's task, shared by the suite.

dbt takes 4-6 s per invocation, so the run of the acceptance flow's commands
(``dbt deps``, ``dbt build``, ``dbt run``) happens once per session and several
tests read its result.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dbt_shop import ACCEPTANCE_PROPS, NAMESPACE, shop_runtime
from roost.testing import TaskResult, run_task
from roost_dbt.tasks import DbtCLI


@pytest.fixture(scope="session")
def acceptance_run() -> TaskResult:
    """The acceptance flow's dbt task on the shop project (files laid out as namespace files)."""
    result = run_task(
        DbtCLI,
        runtime=shop_runtime(),
        namespace=NAMESPACE,
        namespaceFiles={"enabled": True},
        raise_on_failure=False,
        **ACCEPTANCE_PROPS,
    )
    assert result.state == "SUCCESS", (result.error, result.messages[-20:])
    return result


@pytest.fixture(scope="session")
def built_project(acceptance_run: TaskResult) -> Path:
    """The working directory of the acceptance run, with its target/ artifacts."""
    assert acceptance_run.context is not None
    return acceptance_run.context.working_dir
