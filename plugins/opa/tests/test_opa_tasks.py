"""Upload, List, Delete, Evaluate and Compile against the fake OPA (policies evaluated by regopy)."""

from __future__ import annotations

import json

import pytest
from opa_support import TOKEN, VM_POLICY, assert_no_secret
from roost import TaskError
from roost.testing import run_task
from roost_opa.tasks import Compile, Delete, Evaluate, List, Upload

AUTO = {"enableAuto": True}
SMALL_VM = {"vm": {"name": "web-1", "cpus": 2, "memory_mb": 4096, "image": "debian:12"}}
BIG_VM = {"vm": {"name": "db-1", "cpus": 16, "memory_mb": 65536, "image": "debian:12"}}


# -- Upload ------------------------------------------------------------------------------------------


def test_upload_policy(opa, conn):
    result = run_task(Upload, policyId="vm", policy=VM_POLICY, **conn)
    assert result.outputs == {"policyId": "vm", "package": "vm.admission", "path": "vm/admission"}
    assert opa.policies == {"vm": VM_POLICY}
    put = opa.requests[-1]
    assert put.method == "PUT" and put.path == "/v1/policies/vm"
    assert put.headers["content-type"] == "text/plain"
    assert put.headers["authorization"] == f"Bearer {TOKEN}"
    assert put.body.decode() == VM_POLICY
    assert_no_secret(result)


def test_upload_replaces_a_module(opa, conn):
    run_task(Upload, policyId="vm", policy=VM_POLICY, **conn)
    run_task(Upload, policyId="vm", policy="package vm.admission\n\nallow := true\n", **conn)
    assert list(opa.policies) == ["vm"]
    assert run_task(Evaluate, policyPath="vm/admission/allow", input=BIG_VM, **conn).outputs["result"] is True


def test_upload_syntax_error_reports_opa_error(opa, conn):
    bad = "package vm\n\nallow if {\n  input.cpus == \n}\n"
    result = run_task(Upload, policyId="broken", policy=bad, raise_on_failure=False, **conn)
    assert result.state == "FAILED"
    assert result.error == (
        "OPA error on PUT /v1/policies/broken (HTTP 400): invalid_parameter: error(s) occurred while "
        "compiling module(s) [rego_parse_error: Invalid boolean operator (broken:4:14)]"
    )
    assert opa.policies == {}


def test_upload_compile_errors(opa, conn):
    unknown_fn = run_task(
        Upload, policyId="f", policy="package f\n\nallow if nope(1)\n", raise_on_failure=False, **conn
    )
    assert "rego_type_error: Function not found: nope" in unknown_fn.error
    no_package = run_task(Upload, policyId="p", policy="allow := true\n", raise_on_failure=False, **conn)
    assert "rego_parse_error: package expected (p:1:1)" in no_package.error


def test_upload_metrics(opa, conn):
    out = run_task(Upload, policyId="vm", policy=VM_POLICY, metrics=True, **conn).outputs
    assert set(out["metrics"]) >= {"timer_rego_module_parse_ns", "timer_server_handler_ns"}


# -- List / Delete --------------------------------------------------------------------------------------


def test_list_fetch_kinds(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    opa.add_policy("net", "package net.rules\n\nopen_ports := [22, 443]\n")
    fetched = run_task(List, **conn).outputs
    assert fetched["total"] == 2 and fetched["size"] == 2
    assert [(p["id"], p["package"], p["path"]) for p in fetched["policies"]] == [
        ("vm", "vm.admission", "vm/admission"),
        ("net", "net.rules", "net/rules"),
    ]
    assert "ast" not in fetched["policies"][0]
    with_ast = run_task(List, includeAst=True, **conn).outputs
    assert with_ast["policies"][0]["ast"]["package"]["path"][1] == {"type": "string", "value": "vm"}
    one = run_task(List, fetchType="FETCH_ONE", **conn).outputs
    assert one["policy"]["id"] == "vm" and one["size"] == 1 and "policies" not in one
    none = run_task(List, fetchType="NONE", **conn).outputs
    assert none == {"size": 0, "total": 2}
    stored = run_task(List, fetchType="STORE", **conn)
    lines = stored.context.read_file(stored.outputs["uri"]).decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["vm", "net"]
    assert stored.outputs["uri"].startswith("kestra://") and stored.outputs["uri"].endswith(".ion")


def test_delete_policy(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    out = run_task(Delete, policyId="vm", **conn).outputs
    assert out == {"policyId": "vm", "deleted": True}
    assert opa.policies == {}
    again = run_task(Delete, policyId="vm", raise_on_failure=False, **conn)
    assert again.error == (
        'OPA error on DELETE /v1/policies/vm (HTTP 404): resource_not_found: storage_not_found_error: policy id "vm"'
    )


# -- Evaluate -------------------------------------------------------------------------------------------


def test_evaluate_allowed(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    result = run_task(Evaluate, policyPath="vm/admission/allow", input=SMALL_VM, **conn)
    out = result.outputs
    assert out["result"] is True and out["allowed"] is True and out["defined"] is True
    assert out["policyPath"] == "vm/admission/allow"
    assert out["decisionId"] == opa.decisions[-1]["decision_id"]
    req = opa.requests[-1]
    assert req.method == "POST" and req.path == "/v1/data/vm/admission/allow"
    assert json.loads(req.body) == {"input": SMALL_VM}
    assert any("decision data.vm.admission.allow = true" in m for m in result.messages)
    assert_no_secret(result)


def test_a_false_decision_is_false_not_undefined(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    out = run_task(Evaluate, policyPath="vm/admission/allow", input=BIG_VM, **conn).outputs
    assert out["result"] is False and out["allowed"] is False and out["defined"] is True


def test_fail_on_deny_gates_on_false_and_undefined(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    denied = run_task(
        Evaluate,
        policyPath="vm/admission/allow",
        input=BIG_VM,
        failOnDeny=True,
        raise_on_failure=False,
        **conn,
    )
    assert denied.state == "FAILED"
    assert denied.error.startswith("OPA denied data.vm.admission.allow: the decision is false (decision id ")
    banned = {"vm": {**SMALL_VM["vm"], "image": "centos:6"}}
    assert (
        run_task(
            Evaluate,
            policyPath="vm/admission/allow",
            input=banned,
            failOnDeny=True,
            raise_on_failure=False,
            **conn,
        ).state
        == "FAILED"
    )
    undefined = run_task(
        Evaluate,
        policyPath="vm/admission/missing_rule",
        input=SMALL_VM,
        failOnDeny=True,
        raise_on_failure=False,
        **conn,
    )
    assert "the decision is undefined" in undefined.error
    passed = run_task(Evaluate, policyPath="vm/admission/allow", input=SMALL_VM, failOnDeny=True, **conn)
    assert passed.state == "SUCCESS"


def test_undefined_decision(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    out = run_task(Evaluate, policyPath="nothing/here", input=SMALL_VM, **conn).outputs
    assert out["defined"] is False and out["allowed"] is False and "result" not in out
    assert out["decisionId"]


def test_non_boolean_decisions(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    out = run_task(Evaluate, policyPath="vm/admission/deny", input=BIG_VM, failOnDeny=True, **conn).outputs
    assert out["result"] == ["16 vCPUs is more than 4"]
    assert "allowed" not in out
    whole = run_task(Evaluate, policyPath="data.vm.admission", input=SMALL_VM, **conn).outputs
    assert whole["result"]["allow"] is True
    assert sorted(whole["result"]["banned_images"]) == ["centos:6", "debian:7"]


@pytest.mark.parametrize(
    "path",
    [
        "vm/admission/allow",
        "/vm/admission/allow",
        "data.vm.admission.allow",
        "vm.admission.allow",
        "data/vm/admission/allow",
    ],
)
def test_policy_path_forms(opa, conn, path):
    opa.add_policy("vm", VM_POLICY)
    out = run_task(Evaluate, policyPath=path, input=SMALL_VM, **conn).outputs
    assert out["policyPath"] == "vm/admission/allow" and out["result"] is True


def test_input_is_rendered_from_expressions(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    out = run_task(
        Evaluate,
        policyPath="vm/admission/allow",
        input={"vm": {"cpus": "{{ cpus }}", "memory_mb": 1024, "image": "{{ image }}"}},
        variables={"cpus": 2, "image": "debian:7"},
        **conn,
    ).outputs
    assert opa.decisions[-1]["input"] == {"vm": {"cpus": 2, "memory_mb": 1024, "image": "debian:7"}}
    assert out["allowed"] is False


def test_evaluate_without_input_and_with_metrics_and_explain(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    result = run_task(
        Evaluate, policyPath="vm/admission/banned_images", metrics=True, explain="notes", **conn
    )
    out = result.outputs
    assert sorted(out["result"]) == ["centos:6", "debian:7"]
    assert "timer_rego_query_eval_ns" in out["metrics"]
    assert out["explanation"] == []
    req = opa.requests[-1]
    assert req.query == {"metrics": ["true"], "explain": ["notes"]}
    assert json.loads(req.body) == {}
    assert any("'input' key missing from the request" in m for m in result.messages)


# -- Compile --------------------------------------------------------------------------------------------


def test_compile_outcomes(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    always = run_task(
        Compile, query="data.vm.admission.allow == true", input=SMALL_VM, unknowns=["data.records"], **conn
    ).outputs
    assert always["outcome"] == "ALWAYS_TRUE" and always["queries"] == [[]]
    never = run_task(
        Compile, query="data.vm.admission.allow == true", input=BIG_VM, unknowns=["data.records"], **conn
    ).outputs
    assert never["outcome"] == "NEVER_TRUE" and "queries" not in never and never["result"] == {}
    body = json.loads(opa.requests[-1].body)
    assert body == {"query": "data.vm.admission.allow == true", "input": BIG_VM, "unknowns": ["data.records"]}


def test_compile_errors(opa, conn):
    opa.add_policy("vm", VM_POLICY)
    syntax = run_task(Compile, query="data.vm.admission.allow ==", raise_on_failure=False, **conn)
    assert "HTTP 400" in syntax.error and "error(s) occurred while parsing query" in syntax.error
    assert "rego_parse_error: Invalid boolean operator" in syntax.error
    residual = run_task(Compile, query="input.vm.cpus > 2", raise_on_failure=False, **conn)
    assert "HTTP 500" in residual.error and "partial evaluation over unknown 'input'" in residual.error


def test_compile_passes_options(opa, conn):
    out = run_task(
        Compile, query="1 > 0", options={"disableInlining": ["data.x"]}, explain="full", **conn
    ).outputs
    assert out["outcome"] == "ALWAYS_TRUE" and out["explanation"] == []
    assert json.loads(opa.requests[-1].body)["options"] == {"disableInlining": ["data.x"]}


# -- assets ------------------------------------------------------------------------------------------------


def test_auto_assets(opa, conn):
    host = opa.url.removeprefix("http://")
    opa.add_policy("net", "package net.rules\n\nopen_ports := [22]\n")
    up = run_task(Upload, policyId="vm", policy=VM_POLICY, assets=AUTO, **conn)
    [asset] = up.assets[0].outputs
    assert asset.id == f"opa:{host}:policy:vm"
    assert asset.type == "io.kestra.core.models.assets.External"
    assert asset.display_name == "vm"
    assert asset.metadata == {
        "system": "opa",
        "kind": "policy",
        "host": host,
        "policyId": "vm",
        "package": "vm.admission",
        "path": "vm/admission",
        "state": "present",
    }
    ev = run_task(Evaluate, policyPath="vm/admission/allow", input=SMALL_VM, assets=AUTO, **conn)
    assert [a.id for a in ev.assets[0].inputs] == [asset.id]
    assert ev.assets[0].outputs == []
    parent = run_task(Evaluate, policyPath="data", assets=AUTO, **conn)
    assert sorted(a.metadata["policyId"] for a in parent.assets[0].inputs) == ["net", "vm"]
    lone = run_task(Evaluate, policyPath="other/thing", assets=AUTO, **conn)
    assert [(a.id, a.metadata["kind"]) for a in lone.assets[0].inputs] == [
        (f"opa:{host}:data/other/thing", "decision")
    ]
    gone = run_task(Delete, policyId="vm", assets=AUTO, **conn)
    assert (
        gone.assets[0].outputs[0].id == asset.id and gone.assets[0].outputs[0].metadata["state"] == "deleted"
    )
    before = len(opa.requests)
    plain = run_task(Evaluate, policyPath="net/rules", **conn)
    assert plain.assets == []
    assert [r.path for r in opa.requests[before:]] == [
        "/v1/data/net/rules"
    ]  # no policy listing without enableAuto


def test_task_error_is_a_task_error(opa, conn):
    with pytest.raises(TaskError):
        run_task(Delete, policyId="missing", **conn)
