"""Roost plugin for Ansible: Kestra's ``io.kestra.plugin.ansible.cli.AnsibleCLI`` task."""

__version__ = "0.1.0"
