"""AIAgent on a real engine against a fake OpenAI/Ollama server over real HTTP: answers, tools (a Roost
flow, an HTTP API), structured output, memory, the tool-call bound, kill, and deploy-time checks."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from conftest import KEY
from roost.testing.http import FakeHttpServer, Reply, Request
from roost.testing.llm import FakeLlm

AGENT = "io.kestra.plugin.ai.agent.AIAgent"


def provider(llm: FakeLlm) -> str:
    return (f"    provider:\n      type: io.kestra.plugin.ai.provider.OpenAI\n      modelName: gpt-test\n"
            f"      apiKey: \"{{{{ secret('OPENAI_API_KEY') }}}}\"\n      baseUrl: {llm.openai_url}\n")  # fmt: skip


def agent_flow(
    llm: FakeLlm, extra: str = "", *, flow_id: str = "agent", prompt: str = "What is 2 + 3?"
) -> str:
    return (f"id: {flow_id}\nnamespace: company.ai\ntasks:\n  - id: agent\n    type: {AGENT}\n"
            f"    systemMessage: You are precise.\n    prompt: \"{prompt}\"\n" + provider(llm) + extra)  # fmt: skip


ADD = """id: add
namespace: company.tools
description: Add two whole numbers
inputs:
  - id: a
    type: INT
  - id: b
    type: INT
tasks:
  - id: sum
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.a + inputs.b }}"
outputs:
  - id: total
    type: STRING
    value: "{{ outputs.sum.value }}"
"""


def outputs(ex: Any) -> dict[str, Any]:
    run = next(tr for tr in ex.task_runs if tr.task_id == "agent")
    return run.outputs or {}


def logs(engine: Any, ex: Any) -> str:
    deadline = time.monotonic() + 5
    text = ""
    while time.monotonic() < deadline:
        text = "\n".join(r["message"] for r in engine.store.get_logs("main", ex.id))
        if text:
            break
        time.sleep(0.1)
    return text


def test_a_plain_answer(run_flow: Any, roost_engine: Any, llm: FakeLlm) -> None:
    llm.script({"content": "5", "usage": {"prompt_tokens": 30, "completion_tokens": 2}})
    ex = run_flow(
        agent_flow(
            llm, "    configuration:\n      temperature: 0.1\n      seed: 7\n      logRequests: true\n"
        )
    )
    assert ex.state.current == "SUCCESS", logs(roost_engine, ex)
    out = outputs(ex)
    assert out["textOutput"] == "5" and out["finishReason"] == "STOP"
    assert out["tokenUsage"] == {"inputTokenCount": 30, "outputTokenCount": 2, "totalTokenCount": 32}
    (chat,) = llm.chats
    assert chat["model"] == "gpt-test" and chat["temperature"] == 0.1 and chat["seed"] == 7
    assert chat["messages"] == [{"role": "system", "content": "You are precise."},
                                {"role": "user", "content": "What is 2 + 3?"}]  # fmt: skip
    assert "tools" not in chat
    assert llm.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in logs(roost_engine, ex)


def test_a_flow_tool_runs_the_flow_and_answers_with_its_outputs(
    run_flow: Any, roost_engine: Any, llm: FakeLlm
) -> None:
    roost_engine.deploy(ADD)
    llm.script(
        {
            "tool_calls": [
                {
                    "id": "c1",
                    "name": "kestra_flow_company_tools_add",
                    "arguments": {"inputs": [{"id": "a", "value": 2}, {"id": "b", "value": 3}]},
                }
            ]
        },  # fmt: skip
        lambda body: f"The sum is {json.loads(body['messages'][-1]['content'])['outputs']['total']}",
    )
    tools = ("    tools:\n      - type: io.kestra.plugin.ai.tool.KestraFlow\n        namespace: company.tools\n"
             "        flowId: add\n        wait: true\n")  # fmt: skip
    ex = run_flow(agent_flow(llm, tools))
    assert ex.state.current == "SUCCESS", logs(roost_engine, ex)
    out = outputs(ex)
    assert out["textOutput"] == "The sum is 5" and out["finishReason"] == "STOP"
    (call,) = out["toolExecutions"]
    assert call["requestName"] == "kestra_flow_company_tools_add"
    assert call["requestArguments"]["inputs"][0] == {"id": "a", "value": 2}
    result = json.loads(call["result"])
    assert result["state"]["current"] == "SUCCESS" and result["outputs"] == {"total": "5"}
    assert out["tokenUsage"]["inputTokenCount"] == 22  # both model calls counted
    spec = llm.chats[0]["tools"][0]["function"]
    assert spec["name"] == "kestra_flow_company_tools_add" and spec["parameters"]["required"] == ["inputs"]
    assert "Add two whole numbers" in spec["description"] and "a (INT, required)" in spec["description"]
    child = roost_engine.get_execution(result["id"])
    assert child.flow_id == "add" and child.parent_id == ex.id
    assert child.label_map()["system.correlationId"] == ex.label_map().get("system.correlationId", ex.id)


def test_tool_errors_go_back_to_the_model(run_flow: Any, roost_engine: Any, llm: FakeLlm) -> None:
    roost_engine.deploy(ADD)
    llm.script(
        {
            "tool_calls": [
                {
                    "name": "kestra_flow",
                    "arguments": {
                        "namespace": "company.tools",
                        "flowId": "add",
                        "inputs": [{"id": "a", "value": 1}],
                    },
                }
            ]
        },  # fmt: skip
        {"tool_calls": [{"name": "kestra_flow", "arguments": {"namespace": "nowhere", "flowId": "x"}}]},
        {"tool_calls": [{"name": "no_such_tool", "arguments": {}}]},
        "giving up",
    )
    ex = run_flow(agent_flow(llm, "    tools:\n      - type: io.kestra.plugin.ai.tool.KestraFlow\n"))
    assert ex.state.current == "SUCCESS", logs(roost_engine, ex)
    results = [t["result"] for t in outputs(ex)["toolExecutions"]]
    assert results[0] == "error: You need to provide an input with the id 'b'."
    assert results[1] == "error: flow nowhere.x not found"
    assert results[2].startswith("error: there is no tool named 'no_such_tool' (tools: kestra_flow)")
    assert llm.chats[1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_0", "name": "kestra_flow",
                                            "content": results[0]}  # fmt: skip


class FakeApi(FakeHttpServer):
    def answer(self, request: Request) -> Reply:
        if request.headers.get("Authorization") != "Bearer api-token-123":
            return 401, {"Content-Type": "application/json"}, b'{"error": "unauthorized"}'
        if request.path == "/api/moved":
            return 302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""
        if request.path == "/api/items/42":
            return 200, {"Content-Type": "application/json"}, b'{"id": 42, "name": "widget"}'
        return 404, {"Content-Type": "application/json"}, b'{"error": "no such item"}'


def test_the_http_tool_calls_under_its_base_url_only(run_flow: Any, roost_engine: Any, llm: FakeLlm,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import base64

    monkeypatch.setenv("SECRET_API_TOKEN", base64.b64encode(b"api-token-123").decode())
    api = FakeApi().start()
    try:
        llm.script(
            {"tool_calls": [{"name": "items", "arguments": {"method": "GET", "path": "/items/42"}}]},
            {"tool_calls": [{"name": "items", "arguments": {"method": "GET", "path": "/items/../../admin"}}]},
            {"tool_calls": [{"name": "items", "arguments": {"method": "DELETE", "path": "/items/42"}}]},
            {"tool_calls": [{"name": "items", "arguments": {"method": "GET", "path": "/items/7"}}]},
            {
                "tool_calls": [
                    {"name": "items", "arguments": {"method": "GET", "path": "/items%2F..%2F..%2Fadmin"}}
                ]
            },
            {"tool_calls": [{"name": "items", "arguments": {"method": "GET", "path": "/moved"}}]},
            "done",
        )
        tools = ("    tools:\n      - type: io.roost.plugin.ai.tool.HttpRequest\n        name: items\n"
                 "        description: The item catalogue\n"
                 f"        baseUrl: {api.url}/api\n        headers:\n"
                 "          Authorization: \"Bearer {{ secret('API_TOKEN') }}\"\n")  # fmt: skip
        ex = run_flow(agent_flow(llm, tools))
    finally:
        api.stop()
    assert ex.state.current == "SUCCESS", logs(roost_engine, ex)
    results = [t["result"] for t in outputs(ex)["toolExecutions"]]
    assert results[0].startswith("HTTP 200") and '"name": "widget"' in results[0]
    assert results[1] == f"error: path '/items/../../admin' is not a path under {api.url}/api"
    assert results[2] == "error: method DELETE is not allowed (allowed: GET)"
    assert "404" in results[3] and "no such item" in results[3]
    assert results[4].startswith("error: path '/items%2F..") and results[5].startswith("HTTP 302")
    assert [r.path for r in api.requests] == [
        "/api/items/42",
        "/api/items/7",
        "/api/moved",
    ]  # no redirect followed
    everything_sent = json.dumps(llm.chats)
    assert "api-token-123" not in everything_sent  # the tool's credentials never reach the model


SCHEMA = """    configuration:
      responseFormat:
        type: JSON
        jsonSchema:
          type: object
          required: [category, priority]
          additionalProperties: false
          properties:
            category: {type: string, enum: [ACCOUNT, BILLING]}
            priority: {type: string, enum: [LOW, HIGH]}
"""


def test_structured_output_is_checked_against_the_schema(
    run_flow: Any, roost_engine: Any, llm: FakeLlm
) -> None:
    llm.script('{"category": "SHOES", "priority": "LOW"}', '{"category": "BILLING", "priority": "HIGH"}')
    ex = run_flow(agent_flow(llm, SCHEMA))
    assert ex.state.current == "SUCCESS", logs(roost_engine, ex)
    out = outputs(ex)
    assert out["jsonOutput"] == {"category": "BILLING", "priority": "HIGH"} and "textOutput" not in out
    fmt = llm.chats[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == [
        "category",
        "priority",
    ]
    assert "at category: 'SHOES' is not one of" in llm.chats[1]["messages"][-1]["content"]
    llm.script("not json at all", '{"category": "BILLING"}')
    ex = run_flow(agent_flow(llm, SCHEMA, flow_id="agent2"))
    assert ex.state.current == "FAILED"
    assert "does not match responseFormat.jsonSchema: at the root: 'priority' is a required property" in logs(
        roost_engine, ex
    )


def test_memory_carries_the_conversation_between_runs(run_flow: Any, roost_engine: Any, llm: FakeLlm) -> None:
    memory = ("    memory:\n      type: io.kestra.plugin.ai.memory.KestraKVStore\n      memoryId: john\n"
              "      messages: 4\n      ttl: PT10M\n")  # fmt: skip
    llm.script("Hello John", "You are John, from Paris")
    run_flow(agent_flow(llm, memory, prompt="I am John, from Paris"))
    ex = run_flow(agent_flow(llm, memory, flow_id="agent_again", prompt="Who am I?"))
    assert outputs(ex)["textOutput"] == "You are John, from Paris"
    assert llm.chats[1]["messages"][1:] == [
        {"role": "user", "content": "I am John, from Paris"}, {"role": "assistant", "content": "Hello John"},
        {"role": "user", "content": "Who am I?"}]  # fmt: skip
    stored = roost_engine.runtime("main").kv.get("company.ai", "john")
    assert len(stored) == 4 and stored[-1]["content"] == "You are John, from Paris"
    llm.script("bye")
    run_flow(
        agent_flow(llm, memory.replace("PT10M\n", "PT10M\n      drop: AFTER_TASKRUN\n"), flow_id="forget")
    )
    from roost.engine.context import MISSING

    assert roost_engine.runtime("main").kv.get("company.ai", "john") is MISSING


def test_tool_calls_are_bounded(run_flow: Any, roost_engine: Any, llm: FakeLlm) -> None:
    roost_engine.deploy(ADD)
    call = {"tool_calls": [{"name": "kestra_flow_company_tools_add",
                            "arguments": {"inputs": [{"id": "a", "value": 1}, {"id": "b", "value": 1}]}}]}  # fmt: skip
    llm.default = lambda body: call
    tools = ("    maxSequentialToolsInvocations: 3\n    tools:\n      - type: io.kestra.plugin.ai.tool.KestraFlow\n"
             "        namespace: company.tools\n        flowId: add\n")  # fmt: skip
    ex = run_flow(agent_flow(llm, tools))
    assert ex.state.current == "FAILED"
    assert "more than 3 tool calls (maxSequentialToolsInvocations)" in logs(roost_engine, ex)
    assert len(llm.chats) == 4


def test_ollama(run_flow: Any, roost_engine: Any, llm: FakeLlm) -> None:
    llm.script(
        {
            "tool_calls": [
                {
                    "name": "kestra_flow",
                    "arguments": {
                        "namespace": "company.tools",
                        "flowId": "add",
                        "inputs": [{"id": "a", "value": 4}, {"id": "b", "value": 4}],
                    },
                }
            ]
        },  # fmt: skip
        "eight",
    )
    roost_engine.deploy(ADD)
    flow = (f"id: local\nnamespace: company.ai\ntasks:\n  - id: agent\n    type: {AGENT}\n    prompt: add 4 and 4\n"
            f"    provider:\n      type: io.kestra.plugin.ai.provider.Ollama\n      modelName: llama-test\n"
            f"      endpoint: {llm.url}\n    configuration:\n      temperature: 0\n      maxToken: 50\n"
            "    tools:\n      - type: io.kestra.plugin.ai.tool.KestraFlow\n")  # fmt: skip
    ex = run_flow(flow)
    assert ex.state.current == "SUCCESS", logs(roost_engine, ex)
    assert outputs(ex)["textOutput"] == "eight"
    first, second = llm.chats
    assert llm.requests[-1].path == "/api/chat" and first["options"] == {
        "temperature": 0.0,
        "num_predict": 50,
    }
    assert (
        second["messages"][-2]["tool_calls"][0]["function"]["arguments"]["flowId"] == "add"
    )  # objects, not text
    assert second["messages"][-1]["role"] == "tool" and second["messages"][-1]["tool_name"] == "kestra_flow"


def test_a_kill_stops_the_call_in_flight(roost_engine: Any, llm: FakeLlm) -> None:
    llm.inject(200, {"choices": []}, delay=60)
    flow = roost_engine.deploy(agent_flow(llm))
    ex = roost_engine.create_execution(flow)
    deadline = time.monotonic() + 10
    while not llm.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    roost_engine.kill(ex.id)
    ended = roost_engine.wait(ex.id, 15)
    assert ended.state.current == "KILLED" and time.monotonic() - started < 10


SLOW = """id: slow
namespace: company.tools
description: Take a long time
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""


def test_a_kill_reaches_the_flow_it_waits_for(roost_engine: Any, llm: FakeLlm) -> None:
    roost_engine.deploy(SLOW)
    llm.script({"tool_calls": [{"name": "kestra_flow_company_tools_slow", "arguments": {}}]})
    tools = ("    tools:\n      - type: io.kestra.plugin.ai.tool.KestraFlow\n        namespace: company.tools\n"
             "        flowId: slow\n        wait: true\n")  # fmt: skip
    ex = roost_engine.create_execution(roost_engine.deploy(agent_flow(llm, tools)))
    child_id = None
    deadline = time.monotonic() + 15
    while child_id is None and time.monotonic() < deadline:
        ids = roost_engine.store.execution_ids_of("main", "company.tools", "slow", ("CREATED", "RUNNING"))
        child_id = next(iter(ids), None)
        time.sleep(0.1)
    assert child_id is not None
    roost_engine.kill(ex.id)
    assert roost_engine.wait(ex.id, 15).state.current == "KILLED"
    assert roost_engine.wait(child_id, 15).state.current == "KILLED"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            "    provider:\n      type: io.kestra.plugin.ai.provider.GoogleGemini\n      modelName: g\n",
            "provider",
        ),
        ("    tools:\n      - type: io.kestra.plugin.ai.tool.TavilyWebSearch\n", "tools[0]"),
        (
            "    memory:\n      type: io.kestra.plugin.ai.memory.KestraKVStore\n      messages: 0\n",
            "memory.messages",
        ),
        (
            "    observability:\n      enabled: true\n      captureEverything: true\n",
            "observability.captureEverything",
        ),
    ],
)
def test_bad_settings_are_refused_at_deploy_time(roost_engine: Any, block: str, message: str) -> None:
    from roost.flow.build import FlowInvalid

    base = f"id: bad\nnamespace: company.ai\ntasks:\n  - id: agent\n    type: {AGENT}\n    prompt: hi\n"
    if not block.startswith("    provider"):
        base += "    provider:\n      type: io.kestra.plugin.ai.provider.OpenAI\n      modelName: m\n"
    with pytest.raises(FlowInvalid) as err:
        roost_engine.deploy(base + block)
    assert message in str(err.value)


def test_rate_limits_are_retried_then_reported(run_flow: Any, roost_engine: Any, llm: FakeLlm) -> None:
    llm.inject(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "0"})
    llm.script("fine")
    ex = run_flow(agent_flow(llm))
    assert ex.state.current == "SUCCESS" and outputs(ex)["textOutput"] == "fine"
    llm.inject(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "0"}, times=3)
    ex = run_flow(agent_flow(llm, flow_id="again"))
    assert ex.state.current == "FAILED"
    text = logs(roost_engine, ex)
    assert "model 'gpt-test'" in text and "kept rate-limiting" in text and KEY not in text


def test_concurrent_runs_do_not_mix(roost_engine: Any, llm: FakeLlm) -> None:
    llm.default = lambda body: "answer to " + body["messages"][-1]["content"]
    flows = [roost_engine.deploy(agent_flow(llm, flow_id=f"a{i}", prompt=f"q{i}")) for i in range(4)]
    results: dict[int, Any] = {}

    def go(i: int) -> None:
        results[i] = roost_engine.run(flows[i], timeout=60)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: outputs(r)["textOutput"] for i, r in results.items()} == {
        i: f"answer to q{i}" for i in range(4)
    }


def test_the_provider_can_come_from_plugin_defaults(run_flow: Any, roost_engine: Any, llm: FakeLlm) -> None:
    """Kestra's own examples set the provider once for every agent of a flow."""
    llm.script("first", "second")
    flow = (f"id: defaults\nnamespace: company.ai\ntasks:\n  - id: agent\n    type: {AGENT}\n    prompt: one\n"
            f"  - id: again\n    type: {AGENT}\n    prompt: two\npluginDefaults:\n  - type: {AGENT}\n    values:\n"
            + provider(llm).replace("    provider:", "      provider:").replace("\n      ", "\n        "))  # fmt: skip
    ex = run_flow(flow)
    assert ex.state.current == "SUCCESS", logs(roost_engine, ex)
    assert [c["messages"][-1]["content"] for c in llm.chats] == ["one", "two"]
    assert all(c["model"] == "gpt-test" for c in llm.chats)


def test_the_model_can_schedule_a_flow_for_later(run_flow: Any, roost_engine: Any, llm: FakeLlm) -> None:
    from datetime import UTC, datetime, timedelta

    roost_engine.deploy(ADD)
    later = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    inputs = [{"id": "a", "value": 1}, {"id": "b", "value": 2}]
    llm.script({"tool_calls": [{"name": "kestra_flow", "arguments": {"namespace": "company.tools", "flowId": "add",
                                                                    "inputs": inputs, "scheduleDate": "tomorrow"}}]},
               {"tool_calls": [{"name": "kestra_flow", "arguments": {"namespace": "company.tools", "flowId": "add",
                                                                    "inputs": inputs, "scheduleDate": later.isoformat()}}]},
               "scheduled")  # fmt: skip
    ex = run_flow(agent_flow(llm, "    tools:\n      - type: io.kestra.plugin.ai.tool.KestraFlow\n"))
    assert ex.state.current == "SUCCESS", logs(roost_engine, ex)
    refused, done = outputs(ex)["toolExecutions"]
    assert refused["result"].startswith("error: scheduleDate must be an ISO 8601 date-time")
    child = roost_engine.get_execution(json.loads(done["result"])["id"])
    assert child.schedule_date == later  # (the engine records it; when it starts is the engine's business)
    assert (
        llm.chats[0]["tools"][0]["function"]["parameters"]["properties"]["scheduleDate"]["type"] == "string"
    )
