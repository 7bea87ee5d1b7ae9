"""The AI Copilot panel in real Chromium against a real server whose model is a fake OpenAI-compatible
server (roost.testing.llm): type a prompt, generate, review the diff, apply, deploy; dictation
through a recorder stub posting audio to the transcription route; no panel without models."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from roost.server.config import hash_password
from roost.testing.llm import FakeLlm
from roost.testing.server import ServerProcess

from tests.ui.conftest import PASSWORD, USER, assert_accessible, login, shot

pytestmark = pytest.mark.e2e
KEY = "sk-ui-test-key-0123456789"
LOG = "io.kestra.plugin.core.log.Log"


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def flow_for(body: dict[str, Any]) -> str:
    """The fake model's answer: a flow logging what the user asked for (kept in the current flow's id)."""
    asked = body["messages"][-1]["content"].rsplit(":", 1)[-1].strip().replace('"', "'")
    return (f"```yaml\nid: copilot_flow\nnamespace: ui.copilot\ntasks:\n  - id: hello\n    type: {LOG}\n"
            f'    message: "{asked}"\n```')  # fmt: skip


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLlm]:
    server = FakeLlm(api_key=KEY, required_headers={"X-Team": "ui"}, default=flow_for,
                     transcript="log the nightly numbers").start()  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ai_server(tmp_path_factory: pytest.TempPathFactory, fake: FakeLlm) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("roost-ui-ai")
    config = root / "roost.yaml"
    ai = {"providers": [
        {"id": "fast", "displayName": "Fast model", "type": "openai", "modelName": "fast-1", "baseUrl": fake.openai_url,
         "apiKey": "{{ secret('OPENAI_KEY') }}", "customHeaders": {"X-Team": "ui"}, "timeout": "PT10S"},
        {"id": "smart", "displayName": "Smart model", "type": "openai", "modelName": "smart-1", "baseUrl": fake.openai_url,
         "apiKey": "{{ secret('OPENAI_KEY') }}", "customHeaders": {"X-Team": "ui"}, "default": True}],
        "transcription": {"type": "openai", "modelName": "whisper-1", "baseUrl": fake.openai_url,
                          "apiKey": "{{ secret('OPENAI_KEY') }}", "customHeaders": {"X-Team": "ui"}}}  # fmt: skip
    users = f'  basicAuth:\n    users:\n      - username: "{USER}"\n        passwordHash: "{hash_password(PASSWORD)}"\n'
    config.write_text("server:\n" + users + "ai: " + json.dumps(ai) + "\n")
    env = {"SECRET_OPENAI_KEY": base64.b64encode(KEY.encode()).decode(),
           "ROOST_PLUGIN_DEFAULTS": str(root / "no-folder")}  # fmt: skip
    proc = ServerProcess("local", root / "data", config=config, env=env).wait_ready()
    yield proc
    proc.stop()


@pytest.fixture
def ai_page(browser: Any, ai_server: ServerProcess) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=ai_server.url)
    pg = context.new_page()
    errors: list[str] = []
    pg.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
        ),
    )
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(15000)
    yield pg
    context.close()
    assert not errors, f"browser errors: {errors}"


def test_generate_review_apply_and_deploy(ai_page: Any, ai_server: ServerProcess, fake: FakeLlm) -> None:
    page = ai_page
    login(page)
    page.goto("/ui/main/flows/new")
    panel = page.get_by_role("region", name="AI Copilot")
    expect(panel).to_be_visible()
    model = panel.get_by_label("Model")
    expect(model.locator("option")).to_have_count(2)
    expect(model).to_have_value("smart")  # the configured default is preselected
    model.select_option("fast")
    panel.get_by_label("Describe the flow or the change").fill("say hello to the team")
    panel.get_by_role("button", name="Generate").click()
    expect(panel.get_by_role("status")).to_contain_text("validates")
    diff = page.locator("#copilot-diff")
    expect(diff.locator(".add").filter(has_text="say hello to the team")).to_have_count(1)
    expect(diff.locator(".del").first).to_be_visible()  # the starter flow's lines it replaces
    assert fake.chats[-1]["model"] == "fast-1"
    assert fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert_accessible(page, "copilot")
    shot(page, "20-copilot-proposal")
    panel.get_by_role("button", name="Apply to the editor").click()
    expect(panel.get_by_role("status")).to_contain_text("Applied")
    source = page.evaluate("() => document.querySelector('.CodeMirror').CodeMirror.getValue()")
    assert "id: copilot_flow" in source and "say hello to the team" in source
    expect(page.locator("#problems")).to_be_empty()
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/ui/main/flows/ui.copilot/copilot_flow**")
    with httpx.Client(base_url=ai_server.url, auth=(USER, PASSWORD)) as api:
        flow = api.get("/api/v1/main/flows/ui.copilot/copilot_flow").json()
    assert flow["tasks"][0]["message"] == "say hello to the team"


def test_an_invalid_draft_is_shown_as_such(ai_page: Any, fake: FakeLlm) -> None:
    page = ai_page
    login(page)
    page.goto("/ui/main/flows/new")
    bad = (
        f"```yaml\nid: broken\nnamespace: ui.copilot\ntasks:\n  - id: a\n    type: {LOG}\n    mesage: x\n```"
    )
    fake.script(bad, bad, bad)
    panel = page.get_by_role("region", name="AI Copilot")
    panel.get_by_label("Describe the flow or the change").fill("anything")
    panel.get_by_role("button", name="Generate").click()
    expect(page.locator("#copilot-problems")).to_contain_text("does NOT validate")
    expect(page.locator("#copilot-problems")).to_contain_text("tasks[0].mesage")
    expect(panel.get_by_role("status")).to_contain_text("did not produce a valid flow in 3 attempts")


RECORDER_STUB = """
delete window.SpeechRecognition; delete window.webkitSpeechRecognition;
window.__posted = [];
navigator.mediaDevices.getUserMedia = () => Promise.resolve({getTracks: () => [{stop() {}}]});
window.MediaRecorder = class {
  constructor(stream) { this.mimeType = 'audio/webm'; }
  start() {}
  stop() {
    this.ondataavailable({data: new Blob([new Uint8Array([26, 69, 223, 163, 0, 0, 0, 1])], {type: 'audio/webm'})});
    this.onstop();
  }
};
"""


def test_dictation_records_and_transcribes_on_the_server(ai_page: Any, fake: FakeLlm) -> None:
    page = ai_page
    page.add_init_script(RECORDER_STUB)
    login(page)
    page.goto("/ui/main/flows/new")
    panel = page.get_by_role("region", name="AI Copilot")
    mic = panel.get_by_role("button", name="Dictate")
    expect(mic).to_be_visible()
    mic.click()
    expect(panel.get_by_role("button", name="Stop dictation")).to_have_attribute("aria-pressed", "true")
    panel.get_by_role("button", name="Stop dictation").click()
    expect(panel.get_by_label("Describe the flow or the change")).to_have_value("log the nightly numbers")
    sent = fake.transcriptions[-1]
    assert sent["model"] == "whisper-1" and sent["file"]["data"] == bytes([26, 69, 223, 163, 0, 0, 0, 1])


def test_no_panel_without_models(page: Any) -> None:
    login(page)
    page.goto("/ui/main/flows/new")
    expect(page.locator(".CodeMirror")).to_be_visible()
    expect(page.get_by_role("region", name="AI Copilot")).to_have_count(0)


def test_the_line_diff_marks_changes(ai_page: Any) -> None:
    page = ai_page
    login(page)
    page.goto("/ui/main/flows/new")
    rows = page.evaluate("() => window.roostCopilot.lineDiff('a\\nb\\nc', 'a\\nx\\nc\\nd')")
    assert rows == [["ctx", "a"], ["del", "b"], ["add", "x"], ["ctx", "c"], ["add", "d"]]
