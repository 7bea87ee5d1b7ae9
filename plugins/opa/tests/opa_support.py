"""Constants and helpers shared by the OPA tests (a uniquely named module, unlike conftest)."""

from __future__ import annotations

TOKEN = "opa-admin-token-5f2c9e"

VM_POLICY = """package vm.admission

import rego.v1

default allow := false

allow if {
    input.vm.cpus <= 4
    input.vm.memory_mb <= 8192
    not input.vm.image in data.vm.admission.banned_images
}

banned_images := {"debian:7", "centos:6"}

deny contains msg if {
    input.vm.cpus > 4
    msg := sprintf("%d vCPUs is more than 4", [input.vm.cpus])
}
"""


def assert_no_secret(result) -> None:
    texts = [log["message"] for log in result.logs] + [str(result.outputs), str(result.error or "")]
    for text in texts:
        assert TOKEN not in text, f"token leaked in: {text!r}"
