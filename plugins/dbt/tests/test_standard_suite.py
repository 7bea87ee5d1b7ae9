"""The core's standard checks of every type (schema renders, everything described, examples validate)."""

from __future__ import annotations

from roost.testing.suite import TypeSuite
from roost_dbt import tasks

EXAMPLE = """
id: dbt_build
namespace: company.team
tasks:
  - id: dbt
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: dbt_build
        type: io.kestra.plugin.dbt.cli.DbtCLI
        taskRunner:
          type: io.kestra.plugin.core.runner.Process
        namespaceFiles:
          enabled: true
          exclude:
            - profiles.yml
        projectDir: dbt
        commands:
          - dbt deps
          - dbt build --target prod
        profiles: |
          my_dbt_project:
            outputs:
              prod:
                type: duckdb
                path: dbt.duckdb
            target: prod
        storeManifest:
          key: manifest.json
          namespace: "{{ flow.namespace }}"
        assets:
          enableAuto: true
  - id: summary
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.dbt_build.runSummary.success }} nodes built"
"""


class TestDbtTypes(TypeSuite):
    types = tasks.TASKS
    examples = [EXAMPLE]
