"""Roost dbt plugin: the ``io.kestra.plugin.dbt.cli.DbtCLI`` task."""

__version__ = "0.1.0"
