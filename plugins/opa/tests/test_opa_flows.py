"""The standard type checks, Kestra's documented examples, and a policy gate on the real engine."""

from __future__ import annotations

import base64

from opa_support import TOKEN
from roost.testing.suite import TypeSuite
from roost_opa import tasks

# Kestra's documented examples for its OPA tasks, as written on kestra.io.
KESTRA_UPLOAD = """
id: upload_policy
namespace: company.team

tasks:
  - id: upload_policy
    type: io.kestra.plugin.ee.opa.policy.Upload
    url: "{{ secret('OPA_URL') }}"
    token: "{{ secret('OPA_TOKEN') }}"
    policyId: "kubernetes-admission"
    policy: |
      package kubernetes.admission

      deny contains msg if {
        input.request.kind == "Deployment"
        not input.request.object.spec.template.spec.securityContext.runAsNonRoot
        msg := "Containers must not run as root"
      }

      deny contains msg if {
        input.request.kind == "Deployment"
        input.request.object.spec.replicas > 10
        input.request.namespace != "production"
        msg := "Non-production deployments cannot exceed 10 replicas"
      }
"""

KESTRA_EVALUATE = """
id: check_policy
namespace: company.team

tasks:
  - id: check_policy
    type: io.kestra.plugin.ee.opa.policy.Evaluate
    url: "{{ secret('OPA_URL') }}"
    token: "{{ secret('OPA_TOKEN') }}"
    policyPath: "kubernetes/admission"
    input:
      request:
        operation: "CREATE"
        kind: "Deployment"
        object:
          metadata:
            name: "nginx-deployment"
            namespace: "production"
          spec:
            replicas: 3
            template:
              spec:
                containers:
                  - name: "nginx"
                    image: "nginx:1.21"
                    securityContext:
                      runAsNonRoot: true
                      readOnlyRootFilesystem: true
    metrics: true
    explain: "notes"
"""

KESTRA_LIST_DELETE = """
id: list_and_delete
namespace: company.team

tasks:
  - id: list_policies
    type: io.kestra.plugin.ee.opa.policy.List
    url: "{{ secret('OPA_URL') }}"
    token: "{{ secret('OPA_TOKEN') }}"
  - id: delete_policy
    type: io.kestra.plugin.ee.opa.policy.Delete
    url: "{{ secret('OPA_URL') }}"
    token: "{{ secret('OPA_TOKEN') }}"
    policyId: "test"
"""

KESTRA_COMPILE = """
id: compile_policy
namespace: company.team

tasks:
  - id: compile_policy
    type: io.kestra.plugin.ee.opa.policy.Compile
    url: "{{ secret('OPA_URL') }}"
    token: "{{ secret('OPA_TOKEN') }}"
    query: "data.authz.allow == true"
    input:
      user:
        role: "analyst"
        department: "finance"
    unknowns:
      - "data.records"
    options:
      disableInlining: []
    metrics: true
"""

# Check a policy before starting a VM: the gate fails the flow when the decision is not true.
VM_GATE = """
id: start_vm_if_allowed
namespace: company.team
inputs:
  - id: cpus
    type: INT
    defaults: 2
tasks:
  - id: upload
    type: io.kestra.plugin.ee.opa.policy.Upload
    url: "{{ secret('OPA_URL') }}"
    token: "{{ secret('OPA_TOKEN') }}"
    policyId: vm-admission
    policy: |
      package vm.admission

      import rego.v1

      default allow := false

      allow if input.vm.cpus <= 4
    assets:
      enableAuto: true
  - id: check
    type: io.kestra.plugin.ee.opa.policy.Evaluate
    url: "{{ secret('OPA_URL') }}"
    token: "{{ secret('OPA_TOKEN') }}"
    policyPath: vm/admission/allow
    input:
      vm:
        name: web-1
        cpus: "{{ inputs.cpus }}"
    failOnDeny: true
    assets:
      enableAuto: true
  - id: start
    type: io.kestra.plugin.core.log.Log
    message: "starting web-1 with {{ inputs.cpus }} vCPUs (decision {{ outputs.check.decisionId }})"
"""


class TestOpaTypes(TypeSuite):
    types = tasks.TASKS
    examples = [KESTRA_UPLOAD, KESTRA_EVALUATE, KESTRA_LIST_DELETE, KESTRA_COMPILE, VM_GATE]


def test_kestra_upload_and_evaluate_examples_run(run_flow, opa, monkeypatch):
    monkeypatch.setenv("SECRET_OPA_URL", base64.b64encode(opa.url.encode()).decode())
    ex = run_flow(KESTRA_UPLOAD)
    assert ex.state.current == "SUCCESS"
    assert list(opa.policies) == ["kubernetes-admission"]
    ex = run_flow(KESTRA_EVALUATE)
    assert ex.state.current == "SUCCESS"
    out = ex.task_runs[0].outputs
    # Kestra's example puts runAsNonRoot on the container, the policy reads it on the pod: denied, as OPA says
    assert out["result"] == {"deny": ["Containers must not run as root"]} and "allowed" not in out
    assert "timer_rego_query_eval_ns" in out["metrics"]


def test_policy_gate_before_starting_a_vm(run_flow, roost_engine, opa, monkeypatch):
    monkeypatch.setenv("SECRET_OPA_URL", base64.b64encode(opa.url.encode()).decode())
    emitted = []
    roost_engine.asset_sink = lambda job, ctx, bundles: emitted.extend(bundles)

    allowed = run_flow(VM_GATE, {"cpus": 2})
    assert allowed.state.current == "SUCCESS", [(tr.task_id, tr.state.current) for tr in allowed.task_runs]
    runs = {tr.task_id: tr for tr in allowed.task_runs}
    assert runs["check"].outputs["allowed"] is True
    assert opa.decisions[-1]["input"] == {"vm": {"name": "web-1", "cpus": 2}}
    logs = roost_engine.store.get_logs("main", allowed.id)
    assert any("starting web-1 with 2 vCPUs" in log["message"] for log in logs)
    assert not any(TOKEN in log["message"] for log in logs)
    host = opa.url.removeprefix("http://")
    assert [a.id for b in emitted for a in b.outputs] == [f"opa:{host}:policy:vm-admission"]
    assert [a.id for b in emitted for a in b.inputs] == [f"opa:{host}:policy:vm-admission"]

    denied = run_flow(VM_GATE, {"cpus": 16})
    assert denied.state.current == "FAILED"
    states = {tr.task_id: tr.state.current for tr in denied.task_runs}
    assert states["check"] == "FAILED" and "start" not in states
    logs = roost_engine.store.get_logs("main", denied.id)
    assert any("OPA denied data.vm.admission.allow: the decision is false" in log["message"] for log in logs)
