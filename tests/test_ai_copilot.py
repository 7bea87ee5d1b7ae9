"""The AI Copilot's routes against a fake OpenAI-compatible server over real HTTP (roost.testing.llm):
generation that validates against the installed types and plugin defaults, violations fed back,
provider faults as clear answers naming the model, the API key never shown, permission and audit."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from roost.engine.engine import Engine
from roost.server import ServerState, create_app
from roost.server.config import ConfigError, ServerConfig, parse_ai
from roost.server.copilot import extract_yaml, rank, type_cards
from roost.store.db import Store
from roost.testing.llm import FakeLlm

KEY = "sk-live-0123456789abcdefSECRET"
LOG = "io.kestra.plugin.core.log.Log"
GOOD = f"id: hello\nnamespace: company.team\ntasks:\n  - id: say\n    type: {LOG}\n    message: hi\n"


def fenced(text: str) -> str:
    return f"Here is the flow:\n```yaml\n{text}```\nEnjoy."


@pytest.fixture
def fake() -> Iterator[FakeLlm]:
    server = FakeLlm(
        api_key=KEY, required_headers={"X-Team": "data"}, transcript="log hello every minute"
    ).start()
    yield server
    server.stop()


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.delenv("ROOST_PLUGIN_DEFAULTS", raising=False)
    monkeypatch.setenv("SECRET_OPENAI_KEY", base64.b64encode(KEY.encode()).decode())
    eng = Engine(Store.sqlite(tmp_path / "db"), tmp_path, workers=2)
    eng.start()
    yield eng
    eng.stop()


def ai_section(fake: FakeLlm, **extra: Any) -> dict[str, Any]:
    return {"providers": [
        {"id": "gpt", "displayName": "GPT test", "type": "openai", "modelName": "gpt-test", "baseUrl": fake.openai_url,
         "apiKey": "{{ secret('OPENAI_KEY') }}", "customHeaders": {"X-Team": "data"}, "timeout": "PT2S"},
        {"id": "local", "type": "io.kestra.plugin.ai.provider.Ollama", "modelName": "llama-test", "baseUrl": fake.url,
         "customHeaders": {"X-Team": "data"}, "default": True},
    ], "transcription": {"type": "openai", "modelName": "whisper-1", "baseUrl": fake.openai_url,
                         "apiKey": "${TEST_OPENAI_KEY}", "customHeaders": {"X-Team": "data"}, "timeout": 1}, **extra}  # fmt: skip


def client(engine: Engine, fake: FakeLlm | None, **extra: Any) -> TestClient:
    config = ServerConfig(ai=parse_ai(ai_section(fake, **extra)) if fake is not None else None)
    return TestClient(create_app(ServerState(engine, config)), raise_server_exceptions=False)


def ask(c: TestClient, prompt: str, **body: Any) -> Any:
    return c.post("/api/v1/main/ai/generate/flow",
                  json={"conversationId": "c1", "userPrompt": prompt, "providerId": "gpt", **body})  # fmt: skip


# -- providers and configuration -------------------------------------------------------------------------
def test_providers_list_the_models_with_the_default(engine: Engine, fake: FakeLlm) -> None:
    r = client(engine, fake).get("/api/v1/main/ai/providers")
    assert r.status_code == 200
    assert r.json() == [{"id": "gpt", "displayName": "GPT test", "isDefault": False},
                        {"id": "local", "displayName": "llama-test", "isDefault": True}]  # fmt: skip
    off = client(engine, None)
    assert off.get("/api/v1/main/ai/providers").json() == []
    r = off.post("/api/v1/main/ai/generate/flow", json={"conversationId": "c", "userPrompt": "x"})
    assert r.status_code == 404 and "not configured" in r.json()["message"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"apiKey": "sk-in-clear"}, "ai.providers[0].apiKey: write a reference"),
        ({"customHeaders": {"X-Bad": "a\r\nInjected: yes"}}, "line break"),
        ({"customHeaders": {"Authorization": "x"}}, "cannot be overridden"),
        ({"type": "anthropic"}, "ai.providers[0].type"),
        ({"timeout": "soon"}, "ai.providers[0].timeout"),
        ({"baseUrl": "file:///etc/passwd"}, "ai.providers[0].baseUrl"),
        ({"modelName": ""}, "ai.providers[0].modelName: required"),
        ({"temperature": 1}, "unknown key 'temperature'"),
    ],
)
def test_bad_ai_configuration_is_refused_naming_the_key(change: dict[str, Any], message: str) -> None:
    section = {"providers": [{"id": "gpt", "modelName": "m", "apiKey": "${K}", **change}]}
    with pytest.raises(ConfigError) as err:
        parse_ai(section)
    assert message in str(err.value)
    assert "sk-in-clear" not in str(err.value) and "Injected" not in str(err.value)


def test_kestra_style_kebab_case_keys_are_read() -> None:
    config = parse_ai({"default-provider": "b", "max-attempts": 2, "providers": [
        {"id": "a", "model-name": "m", "base-url": "http://127.0.0.1:1/v1", "api-key": "${K}"},
        {"id": "b", "display-name": "B", "model-name": "n", "custom-headers": {"X-Org": "o"}}]})  # fmt: skip
    assert config.max_attempts == 2 and config.provider(None).display_name == "B"  # type: ignore[union-attr]
    assert config.providers[0].base_url == "http://127.0.0.1:1/v1" and config.providers[1].headers == (
        ("X-Org", "o"),
    )


def test_two_defaults_and_duplicate_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        parse_ai({"providers": [{"id": "a", "modelName": "m"}, {"id": "a", "modelName": "n"}]})
    with pytest.raises(ConfigError, match="more than one"):
        parse_ai({"providers": [{"id": "a", "modelName": "m", "default": True},
                                {"id": "b", "modelName": "n", "default": True}]})  # fmt: skip
    chosen = parse_ai({"providers": [{"id": "a", "modelName": "m"}, {"id": "b", "modelName": "n"}],
                       "defaultProvider": "b"})  # fmt: skip
    assert chosen.provider(None).id == "b"  # type: ignore[union-attr]


# -- generation -----------------------------------------------------------------------------------------
def test_a_valid_flow_comes_back_as_yaml_and_the_model_is_called_as_configured(
    engine: Engine, fake: FakeLlm
) -> None:
    fake.script(fenced(GOOD))
    r = ask(client(engine, fake), "log hi")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/yaml")
    assert r.text == GOOD
    (chat,) = fake.chats
    request = fake.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}" and request.headers["x-team"] == "data"
    assert chat["model"] == "gpt-test"
    system = chat["messages"][0]["content"]
    assert "- io.kestra.plugin.core.log.Log (task)" in system  # the most relevant type, property by property:
    assert "message (string or array or {{ expression }}, required)" in system
    assert "required: " in system  # the less relevant ones in the compact form
    assert chat["messages"][-1]["content"] == "Write a flow: log hi"


def test_invalid_yaml_then_an_unknown_type_are_fed_back_until_the_flow_validates(
    engine: Engine, fake: FakeLlm
) -> None:
    fake.script(
        fenced("id: [unclosed\n"), fenced(GOOD.replace(LOG, "io.kestra.plugin.core.log.Logg")), fenced(GOOD)
    )
    r = ask(client(engine, fake), "log hi")
    assert r.status_code == 200 and r.text == GOOD
    assert len(fake.chats) == 3
    second, third = fake.chats[1]["messages"], fake.chats[2]["messages"]
    assert "does not validate" in second[-1]["content"]
    assert (
        "Logg" in third[-1]["content"] and LOG in third[-1]["content"]
    )  # the unknown type and its close match
    assert third[-2]["role"] == "assistant"  # the model sees its own last answer


def test_a_model_that_never_validates_gets_422_with_the_violations_and_the_draft(
    engine: Engine, fake: FakeLlm
) -> None:
    bad = GOOD.replace("message: hi", "mesage: hi")
    fake.script(*(fenced(bad) for _ in range(5)))
    r = ask(client(engine, fake, maxAttempts=2), "log hi")
    assert r.status_code == 422
    body = r.json()
    assert "did not produce a valid flow in 2 attempts" in body["message"]
    assert body["yaml"] == bad
    assert any(v["path"] == "tasks[0].mesage" and v["line"] == 6 for v in body["violations"])
    assert len(fake.chats) == 2


def test_the_flow_keeps_its_id_and_namespace(engine: Engine, fake: FakeLlm) -> None:
    c = client(engine, fake)
    renamed = GOOD.replace("id: hello", "id: renamed")
    fake.script(fenced(renamed))
    assert ask(c, "rename it", yaml=GOOD).text == renamed  # not deployed yet: anything goes
    assert c.post("/api/v1/main/flows", content=GOOD).status_code == 200
    fake.script(fenced(renamed), fenced(GOOD))
    r = ask(c, "add a task", yaml=GOOD)
    assert r.status_code == 200 and r.text == GOOD
    assert "must stay 'hello'" in fake.chats[2]["messages"][-1]["content"]
    assert "The current flow:" in fake.chats[1]["messages"][-1]["content"]


def test_plugin_defaults_of_the_namespace_count_in_the_prompt_and_in_validation(
    engine: Engine, fake: FakeLlm
) -> None:
    c = client(engine, fake)
    r = c.put("/api/v1/main/namespaces/company.team/plugindefaults",
              content=f"pluginDefaults:\n  - type: {LOG}\n    values:\n      message: from defaults\n")  # fmt: skip
    assert r.status_code == 200, r.text
    without_message = GOOD.replace("    message: hi\n", "")
    fake.script(fenced(without_message))
    r = ask(c, "log something", namespace="company.team")
    assert r.status_code == 200, r.text  # valid only because the namespace's default supplies `message`
    assert "from defaults" in fake.chats[0]["messages"][0]["content"]
    fake.script(*(fenced(without_message.replace("company.team", "other")) for _ in range(3)))
    r = ask(c, "log something", namespace="other", conversationId="c2")
    assert r.status_code == 422 and any("message" in v["path"] for v in r.json()["violations"])


def test_the_conversation_keeps_earlier_prompts(engine: Engine, fake: FakeLlm) -> None:
    c = client(engine, fake)
    fake.script(fenced(GOOD), fenced(GOOD))
    ask(c, "log hi", conversationId="conv-a")
    ask(c, "now at WARN level", conversationId="conv-a", yaml=GOOD)
    history = fake.chats[1]["messages"][1]["content"]
    assert "Earlier requests" in history and "log hi" in history


def test_ollama_models_speak_ollamas_api(engine: Engine, fake: FakeLlm) -> None:
    fake.script(fenced(GOOD))
    r = client(engine, fake).post(
        "/api/v1/main/ai/generate/flow", json={"conversationId": "c", "userPrompt": "log"}
    )
    assert r.status_code == 200 and r.text == GOOD
    assert fake.requests[-1].path == "/api/chat" and fake.chats[0]["stream"] is False
    assert "authorization" not in fake.requests[-1].headers  # no key configured for it


def test_an_unknown_provider_is_400(engine: Engine, fake: FakeLlm) -> None:
    r = ask(client(engine, fake), "x", providerId="nope")
    assert r.status_code == 400 and "gpt, local" in r.json()["message"]


def test_malformed_requests_are_400(engine: Engine, fake: FakeLlm) -> None:
    c = client(engine, fake)
    assert (
        c.post("/api/v1/main/ai/generate/flow", json={"userPrompt": "x"}).status_code == 400
    )  # conversationId
    assert (
        c.post("/api/v1/main/ai/generate/flow", json={"conversationId": "c", "userPrompt": ""}).status_code
        == 400
    )
    big = {"conversationId": "c", "userPrompt": "x" * 20_001}
    assert c.post("/api/v1/main/ai/generate/flow", json=big).status_code == 400
    assert not fake.chats


# -- provider faults -------------------------------------------------------------------------------------
def _no_key_anywhere(response: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert KEY not in response.text and KEY not in json.dumps(dict(response.headers))
    assert KEY not in caplog.text


def test_a_slow_model_is_504_naming_it(
    engine: Engine, fake: FakeLlm, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject(200, {"choices": []}, delay=10)
    r = ask(client(engine, fake), "x")
    assert r.status_code == 504 and r.json()["message"] == "the AI model 'gpt' did not answer within 2 s"
    _no_key_anywhere(r, caplog)


def test_rate_limiting_is_429_with_the_providers_retry_after(
    engine: Engine, fake: FakeLlm, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject(
        429, {"error": {"message": "Rate limit reached", "type": "requests"}}, headers={"Retry-After": "17"}
    )
    r = ask(client(engine, fake), "x")
    assert r.status_code == 429 and r.headers["retry-after"] == "17"
    assert "'gpt' is rate-limited" in r.json()["message"] and "Rate limit reached" in r.json()["message"]
    _no_key_anywhere(r, caplog)


def test_a_refused_key_is_502_and_the_key_is_never_shown(engine: Engine, fake: FakeLlm, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-key-abcdef0123456789"
    monkeypatch.setenv("SECRET_OPENAI_KEY", base64.b64encode(wrong.encode()).decode())
    # a provider that echoes the key it got (some do, in their error text)
    fake.inject(401, {"error": {"message": f"Incorrect API key provided: {wrong}"}})
    r = ask(client(engine, fake), "x")
    assert r.status_code == 502
    assert "'gpt' refused Roost's credentials (HTTP 401)" in r.json()["message"]
    assert wrong not in r.text and wrong not in caplog.text and "****" in r.text


def test_missing_custom_headers_are_refused_by_the_provider(engine: Engine, fake: FakeLlm) -> None:
    fake.required_headers["X-Region"] = "eu"
    r = ask(client(engine, fake), "x")
    assert r.status_code == 502 and "missing or wrong header X-Region" in r.json()["message"]


def test_a_malformed_answer_is_502(engine: Engine, fake: FakeLlm) -> None:
    fake.inject(200, "<html>gateway</html>", content_type="text/html")
    r = ask(client(engine, fake), "x")
    assert (
        r.status_code == 502
        and "malformed response" in r.json()["message"]
        and "'gpt'" in r.json()["message"]
    )
    fake.inject(200, {"object": "chat.completion", "choices": []})
    r = ask(client(engine, fake), "x")
    assert r.status_code == 502 and "no choices" in r.json()["message"]


def test_an_unresolvable_key_reference_is_503(
    engine: Engine, fake: FakeLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_OPENAI_KEY")
    r = ask(client(engine, fake), "x")
    assert r.status_code == 503 and "apiKey reference cannot be resolved" in r.json()["message"]
    assert not fake.chats


# -- permission and audit ----------------------------------------------------------------------------------
PASSWORD = "copilot-test-password"


def with_roles(engine: Engine, fake: FakeLlm, tmp_path: Path) -> TestClient:
    """A server with roles: ``admin`` (ADMIN), ``dev`` (DEVELOPER on company.team only), ``viewer``
    (VIEWER), ``author`` (flows, no Copilot) as tokens, and the same as basic-auth users for the UI."""
    from roost.server.config import hash_password, hash_token, load_config

    users = "".join(
        f'      - {{username: {who}, passwordHash: "{hash_password(PASSWORD)}", roles: [{role}]}}\n'
        for who, role in (("admin", "ADMIN"), ("dev", "{role: DEVELOPER, tenant: main, namespace: company.team}"),
                          ("viewer", "VIEWER"), ("author", "AUTHOR"))
    )  # fmt: skip
    tokens = "".join(
        f'    - {{name: {who}, tokenHash: "{hash_token(who)}", roles: [{role}]}}\n'
        for who, role in (("admin", "ADMIN"), ("dev", "{role: DEVELOPER, tenant: main, namespace: company.team}"),
                          ("viewer", "VIEWER"))
    )  # fmt: skip
    path = tmp_path / "roost.yaml"
    roles = "  roles:\n    AUTHOR: {permissions: {FLOW: [READ, CREATE, UPDATE]}}\n"
    path.write_text(f"server:\n  basicAuth:\n    users:\n{users}  apiTokens:\n{tokens}{roles}")
    config = load_config(path, env={})
    config.ai = parse_ai(ai_section(fake))
    return TestClient(create_app(ServerState(engine, config)), raise_server_exceptions=False)


def bearer(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {who}"}


def audit_entries(engine: Engine) -> list[dict[str, Any]]:
    from roost.store.audit import SqlAuditLog

    found, _total = SqlAuditLog(engine.store).search(
        tenant="main", resources=["AI_COPILOT"], size=100, ascending=True
    )
    return found


def test_refused_calls_are_403_and_audited(engine: Engine, fake: FakeLlm, tmp_path: Path) -> None:
    c = with_roles(engine, fake, tmp_path)
    body = {"conversationId": "c1", "userPrompt": "x", "providerId": "gpt"}
    r = c.post(
        "/api/v1/main/ai/generate/flow", json={**body, "namespace": "company.team"}, headers=bearer("viewer")
    )
    assert r.status_code == 403
    assert "token:viewer may not CREATE AI_COPILOT in tenant main" in r.json()["message"]  # no right anywhere
    r = c.post(
        "/api/v1/main/ai/generate/flow", json={**body, "namespace": "company.other"}, headers=bearer("dev")
    )
    assert r.status_code == 403  # outside its namespace: the route's check
    assert "may not use the AI Copilot (AI_COPILOT) in namespace company.other" in r.json()["message"]
    assert c.get("/api/v1/main/ai/providers", headers=bearer("viewer")).status_code == 403
    assert c.get("/api/v1/main/ai/providers").status_code == 401
    assert not fake.chats
    denied = [e for e in audit_entries(engine) if e["type"] == "ACCESS_DENIED"]
    assert [e["detail"]["operation"] for e in denied] == [  # the access middleware's, then the route's
        "POST /api/v1/{tenant}/ai/generate/flow", "generateFlow", "GET /api/v1/{tenant}/ai/providers"]  # fmt: skip
    assert {e["userId"] for e in denied} == {"token:viewer", "token:dev"}
    fake.script(fenced(GOOD))
    r = c.post(
        "/api/v1/main/ai/generate/flow", json={**body, "namespace": "company.team"}, headers=bearer("dev")
    )
    assert r.status_code == 200, r.text  # a developer may use it in its own namespace


def test_each_use_is_audited_without_prompt_or_yaml(engine: Engine, fake: FakeLlm) -> None:
    fake.script(fenced(GOOD))
    ask(client(engine, fake), "log the quarterly numbers")
    (entry,) = audit_entries(engine)
    assert entry["type"] == "EXECUTE"
    assert entry["detail"]["provider"] == "gpt" and entry["detail"]["outcome"] == "generated"
    text = json.dumps(entry)
    assert "quarterly" not in text and "say" not in text


# -- flow tests ---------------------------------------------------------------------------------------------
SUITE = """id: hello_test
namespace: company.team
flowId: hello
testCases:
  - id: says_hi
    fixtures:
      tasks:
        - id: say
          description: mocked
    assertions:
      - value: "{{ outputs.say.message }}"
        equalTo: hi
"""


def test_a_test_suite_is_checked_for_structure_and_task_ids(engine: Engine, fake: FakeLlm) -> None:
    fake.script(fenced(SUITE.replace("- id: say", "- id: nosuch")), fenced(SUITE))
    r = client(engine, fake).post("/api/v1/main/ai/generate/test",
                                  json={"conversationId": "t", "userPrompt": "test it", "yaml": GOOD, "providerId": "gpt"})  # fmt: skip
    assert r.status_code == 200 and r.text == SUITE
    feedback = fake.chats[1]["messages"][-1]["content"]
    assert "the flow has no task 'nosuch'" in feedback and "testCases[0].fixtures.tasks[0].id" in feedback
    fake.script(*(fenced("id: t\nnamespace: company.team\nflowId: other\ntestCases: []\n") for _ in range(3)))
    r = client(engine, fake).post("/api/v1/main/ai/generate/test",
                                  json={"conversationId": "t2", "userPrompt": "test", "yaml": GOOD, "providerId": "gpt"})  # fmt: skip
    assert r.status_code == 422
    paths = {v["path"] for v in r.json()["violations"]}
    assert {"flowId", "testCases"} <= paths
    r = client(engine, fake).post(
        "/api/v1/main/ai/generate/test", json={"conversationId": "t", "userPrompt": "x"}
    )
    assert r.status_code == 400


# -- speech to text ------------------------------------------------------------------------------------------
def test_transcription_forwards_the_recording(
    engine: Engine, fake: FakeLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", KEY)
    c = client(engine, fake)
    audio = b"\x1aE\xdf\xa3" + b"\x00" * 2048  # a WebM header and silence
    r = c.post(
        "/api/v1/main/ai/transcribe",
        files={"file": ("prompt.webm", audio, "audio/webm")},
        data={"language": "en"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"text": "log hello every minute"}
    (sent,) = fake.transcriptions
    assert sent["model"] == "whisper-1" and sent["language"] == "en" and sent["file"]["data"] == audio
    assert fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert (
        c.post("/api/v1/main/ai/transcribe", files={"file": ("a.webm", b"", "audio/webm")}).status_code == 400
    )
    assert c.post("/api/v1/main/ai/transcribe", data={"language": "en"}).status_code == 400
    fake.inject(200, {}, delay=10)
    slow = c.post("/api/v1/main/ai/transcribe", files={"file": ("a.webm", audio, "audio/webm")})
    assert slow.status_code == 504


# -- the prompt's context ---------------------------------------------------------------------------------------
def test_types_are_ranked_by_relevance_and_cut_to_the_budget(engine: Engine) -> None:
    cards = type_cards(engine.plugins)
    ranked = rank(cards, "send an HTTP request then log the answer", "")
    top = [c.id for c in ranked[:8]]
    assert "io.kestra.plugin.core.http.Request" in top and LOG in top
    used = rank(cards, "anything", "tasks:\n  - id: a\n    type: io.kestra.plugin.core.flow.Sequential\n")
    assert used[0].id == "io.kestra.plugin.core.flow.Sequential"
    from roost.server.copilot import system_prompt

    small = system_prompt(
        parse_ai({"providers": [{"id": "a", "modelName": "m"}], "contextBudget": 4000}), ranked, [], None
    )
    assert len(small) <= 4000 and LOG in small
    assert "io.kestra.plugin.core.http.Request" in small


def test_yaml_is_taken_from_a_fenced_answer_or_the_whole_text() -> None:
    assert extract_yaml("Sure!\n```yaml\nid: a\n```\nbye") == "id: a\n"
    assert extract_yaml("```\nid: b\n```") == "id: b\n"
    assert extract_yaml("id: c") == "id: c\n"


def test_slow_models_never_hold_the_apis_threads(engine: Engine, fake: FakeLlm) -> None:
    import threading

    fake.inject(200, {"choices": []}, delay=4, times=8)  # each call hangs 4 s, then answers nothing usable
    c = client(engine, fake, providers=[{**ai_section(fake)["providers"][0], "timeout": 30}])
    answers: list[int] = []
    waiting = [threading.Thread(target=lambda: answers.append(ask(c, "x").status_code)) for _ in range(8)]
    for t in waiting:
        t.start()
    deadline = time.monotonic() + 3
    while len(fake.requests) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake.requests) == 4  # four calls wait on the model, the other four wait their turn
    assert c.get("/api/v1/main/flows/search").status_code == 200  # the API answers meanwhile
    assert c.post("/api/v1/main/flows/validate", content=GOOD).status_code == 200
    assert len(fake.requests) == 4  # (still hanging)
    for t in waiting:
        t.join(60)
    assert answers == [502] * 8 and len(fake.requests) == 8


def test_the_editor_shows_the_panel_only_with_models_and_permission(
    engine: Engine, fake: FakeLlm, tmp_path: Path
) -> None:
    import re

    with client(engine, fake) as c:
        page = c.get("/ui/main/flows/new").text
        assert 'aria-labelledby="copilot-title"' in page and 'data-transcription="true"' in page
    with client(engine, None) as c:
        assert "copilot-title" not in c.get("/ui/main/flows/new").text

    def editor_as(user: str) -> str:
        with with_roles(engine, fake, tmp_path) as c:
            login = c.get("/ui/login").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)  # type: ignore[union-attr]
            r = c.post("/ui/login", data={"username": user, "password": PASSWORD, "csrf_token": csrf,
                                          "next": "/ui/main/flows"}, follow_redirects=False)  # fmt: skip
            assert r.status_code == 303
            return c.get("/ui/main/flows/new").text

    assert "copilot-title" in editor_as("admin")
    page = editor_as("dev")  # may create flows in its namespace and use the Copilot there
    assert "copilot-title" in page and "Flow source" in page
    page = editor_as("author")  # may write flows, not use the Copilot
    assert "copilot-title" not in page and "Flow source" in page
