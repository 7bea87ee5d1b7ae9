"""The dbt project of ``fixtures/shop`` and the DbtCLI task of the acceptance flow ``dbt_build_duckdb``."""

from __future__ import annotations

import shutil
from pathlib import Path

from roost.testing import Runtime

SHOP = Path(__file__).parent / "fixtures" / "shop"
NAMESPACE = "company.team"

# The DbtCLI task of the acceptance flow dbt_build_duckdb, with the process task runner
# (the acceptance test forces it through a plugin default: there is no Docker engine here).
PROFILES_MEMORY = """my_dbt_project:
  outputs:
    dev:
      type: duckdb
      path: ":memory:"
      fixed_retries: 1
      threads: 16
      timeout_seconds: 300
  target: dev
"""
ACCEPTANCE_PROPS = {
    "taskRunner": {"type": "io.kestra.plugin.core.runner.Process"},
    "containerImage": "ghcr.io/kestra-io/dbt-duckdb:latest",
    "commands": ["dbt deps", "dbt build", "dbt run"],
    "profiles": PROFILES_MEMORY,
    "assets": {"enableAuto": True},
}


def profiles_file(path: str = "shop.duckdb") -> str:
    """A profile writing to a DuckDB file (relative paths land in the working directory)."""
    return f"my_dbt_project:\n  outputs:\n    dev:\n      type: duckdb\n      path: {path!r}\n      threads: 4\n  target: dev\n"


def shop_runtime(prefix: str = "") -> Runtime:
    """A runtime whose namespace files hold the shop project (under ``prefix``)."""
    rt = Runtime.in_memory()
    for path in SHOP.rglob("*"):
        if path.is_file():
            rt.namespace_files.write(NAMESPACE, prefix + str(path.relative_to(SHOP)), path.read_bytes())
    return rt


def copy_shop(dest: Path) -> Path:
    shutil.copytree(SHOP, dest, dirs_exist_ok=True)
    return dest
