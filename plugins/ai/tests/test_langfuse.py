"""Langfuse observability: the agent's spans, exported by opentelemetry-sdk's OTLP/HTTP exporter to a
real receiver (fake_langfuse) and decoded with opentelemetry-proto: attributes, nesting, auth, and
payloads only when their capture is on."""

from __future__ import annotations

import time
from typing import Any

from fake_langfuse import FakeLangfuse
from roost.testing.llm import FakeLlm
from test_agent import ADD, agent_flow, logs, outputs

OBSERVE = """    observability:
      enabled: true
      endpoint: {endpoint}
      publicKey: pk-lf-test
      secretKey: "{{{{ secret('LANGFUSE_SECRET_KEY') }}}}"
      environment: test
      release: "1.2.3"
{extra}"""
TOOLS = ("    tools:\n      - type: io.kestra.plugin.ai.tool.KestraFlow\n        namespace: company.tools\n"
         "        flowId: add\n        wait: true\n")  # fmt: skip


def spans_of(langfuse: FakeLangfuse, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(langfuse.spans()) < count:
        time.sleep(0.05)
    return langfuse.spans()


def run_traced(
    run_flow: Any, roost_engine: Any, llm: FakeLlm, langfuse: FakeLangfuse, extra: str = ""
) -> Any:
    roost_engine.deploy(ADD)
    llm.script({"tool_calls": [{"id": "c1", "name": "kestra_flow_company_tools_add",
                                "arguments": {"inputs": [{"id": "a", "value": 2}, {"id": "b", "value": 3}]}}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 9}},
               {"content": "The secret sum is 5", "usage": {"prompt_tokens": 60, "completion_tokens": 6}})  # fmt: skip
    flow = agent_flow(llm, TOOLS + OBSERVE.format(endpoint=langfuse.endpoint, extra=extra),
                      prompt="PRIVATE-PROMPT add 2 and 3")  # fmt: skip
    flow = flow.replace("tasks:", "labels:\n  team: data\ntasks:")
    ex = run_flow(flow)
    assert ex.state.current == "SUCCESS", logs(roost_engine, ex)
    return ex


def test_spans_of_the_run_each_model_call_and_each_tool_call(run_flow: Any, roost_engine: Any, llm: FakeLlm,
                                                              langfuse: FakeLangfuse) -> None:  # fmt: skip
    ex = run_traced(run_flow, roost_engine, llm, langfuse)
    spans = spans_of(langfuse, 4)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        by_name.setdefault(s["name"], []).append(s)
    assert sorted(by_name) == ["ai.agent.run", "chat gpt-test", "execute_tool kestra_flow_company_tools_add"]
    (root,) = by_name["ai.agent.run"]
    chats = by_name["chat gpt-test"]
    (tool,) = by_name["execute_tool kestra_flow_company_tools_add"]
    assert len(chats) == 2
    # one trace: the calls are children of the run
    assert {s["traceId"] for s in spans} == {root["traceId"]}
    assert all(s["parentSpanId"] == root["spanId"] for s in [*chats, tool]) and root["parentSpanId"] == ""
    context = {"roost.flow.id": "agent", "roost.namespace": "company.ai", "roost.execution.id": ex.id,
               "roost.task.id": "agent"}  # fmt: skip
    for s in spans:
        assert context.items() <= s["attributes"].items(), s["name"]
        assert s["attributes"]["roost.taskrun.id"]
        assert s["resource"]["service.name"] == "kestra-plugin-ai"
        assert (
            s["resource"]["deployment.environment"] == "test" and s["resource"]["service.version"] == "1.2.3"
        )
        assert s["scope"] == "io.kestra.plugin.ai.agent.AIAgent"
    r = root["attributes"]
    assert (
        r["langfuse.trace.name"] == "AIAgent"
        and r["gen_ai.system"] == "openai"
        and r["gen_ai.request.model"] == "gpt-test"
    )
    assert r["langfuse.session.id"] == ex.label_map().get("system.correlationId", ex.id)
    assert '"executionId": "' + ex.id in r["langfuse.trace.metadata"]
    assert r["gen_ai.usage.input_tokens"] == 100 and r["gen_ai.usage.output_tokens"] == 15
    assert r["ai.finish.reason"] == "STOP"
    first, second = sorted(chats, key=lambda s: s["attributes"]["gen_ai.usage.input_tokens"])
    a = first["attributes"]
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-test" and a["gen_ai.response.model"] == "gpt-test"
    assert a["gen_ai.usage.input_tokens"] == 40 and a["gen_ai.usage.output_tokens"] == 9
    assert a["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert a["langfuse.observation.type"] == "generation"
    assert second["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    t = tool["attributes"]
    assert (
        t["gen_ai.operation.name"] == "execute_tool"
        and t["gen_ai.tool.name"] == "kestra_flow_company_tools_add"
    )
    assert t["gen_ai.tool.call.id"] == "c1" and t["langfuse.observation.type"] == "tool"
    # nothing of the conversation leaves without capture
    everything = repr(spans)
    for private in ("PRIVATE-PROMPT", "You are precise", "The secret sum", '"value": 2', '"total": "5"'):
        assert private not in everything, private
    assert outputs(ex)["textOutput"] == "The secret sum is 5"


def test_payloads_are_captured_only_when_asked(run_flow: Any, roost_engine: Any, llm: FakeLlm,
                                               langfuse: FakeLangfuse) -> None:  # fmt: skip
    extra = ("      capturePrompt: true\n      captureOutput: true\n      captureSystemMessage: true\n"
             "      captureToolArguments: true\n      captureToolResults: true\n      maxPayloadChars: 500\n")  # fmt: skip
    run_traced(run_flow, roost_engine, llm, langfuse, extra)
    spans = {s["name"]: s for s in spans_of(langfuse, 4)}
    root = spans["ai.agent.run"]["attributes"]
    assert root["langfuse.trace.input"] == "PRIVATE-PROMPT add 2 and 3"
    assert root["langfuse.trace.output"] == "The secret sum is 5"
    assert "You are precise." in root["langfuse.trace.metadata"]
    tool = spans["execute_tool kestra_flow_company_tools_add"]["attributes"]
    assert (
        '"value": 2' in tool["langfuse.observation.input"]
        and '"total": "5"' in tool["langfuse.observation.output"]
    )
    chat = spans["chat gpt-test"]["attributes"]
    assert "PRIVATE-PROMPT" in chat["langfuse.observation.input"]
    assert len(chat["langfuse.observation.input"]) <= 500 + len("...[truncated]")


def test_an_unreachable_langfuse_never_fails_the_task(run_flow: Any, roost_engine: Any, llm: FakeLlm,
                                                      langfuse: FakeLangfuse) -> None:  # fmt: skip
    langfuse.auth = "Basic wrong"  # every export refused with 401
    llm.script("fine")
    ex = run_flow(
        agent_flow(llm, OBSERVE.format(endpoint=langfuse.endpoint, extra="      exportTimeout: PT2S\n"))
    )
    assert ex.state.current == "SUCCESS" and outputs(ex)["textOutput"] == "fine"
    assert any(r.path.endswith("/v1/traces") for r in langfuse.requests)
    assert not langfuse.spans()
    llm.script("also fine")
    missing = OBSERVE.format(endpoint=langfuse.endpoint, extra="").replace(
        "      publicKey: pk-lf-test\n", ""
    )
    ex = run_flow(agent_flow(llm, missing, flow_id="no_key"))
    assert ex.state.current == "SUCCESS"
    assert "endpoint, publicKey or secretKey is missing" in logs(roost_engine, ex)


def test_observability_is_off_by_default(run_flow: Any, llm: FakeLlm, langfuse: FakeLangfuse) -> None:
    llm.script("fine")
    off = OBSERVE.format(endpoint=langfuse.endpoint, extra="").replace("enabled: true", "enabled: false")
    ex = run_flow(agent_flow(llm, off))
    assert ex.state.current == "SUCCESS"
    time.sleep(0.3)
    assert not langfuse.requests
