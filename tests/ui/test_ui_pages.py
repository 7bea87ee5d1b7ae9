"""One end-to-end test per page of the web UI, in real Chromium against a real server with auth.

Each test logs in, works through its page as a user would (keyboard and mouse), keeps a
screenshot in ``tests/ui/artifacts/`` and runs axe-core on what it saw.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from roost.testing.server import ServerProcess

from tests.ui.conftest import PASSWORD, USER, assert_accessible, login, shot

pytestmark = pytest.mark.e2e
LOG = "io.kestra.plugin.core.log.Log"
RETURN = "io.kestra.plugin.core.debug.Return"


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def set_editor(page: Any, text: str) -> None:
    """Replace the editor's text the way a paste does (CodeMirror keeps its own model)."""
    page.evaluate("text => { const cm = document.querySelector('.CodeMirror').CodeMirror; cm.setValue(text); cm.focus(); }", text)


def test_login_logout_and_protection(page: Any, server: ServerProcess) -> None:
    page.goto("/ui/main/flows")
    assert "/ui/login" in page.url  # every page needs a session
    assert_accessible(page, "login")
    shot(page, "01-login")
    login(page, USER, "wrong password")
    expect(page.get_by_role("alert")).to_have_text("Invalid user name or password.")
    login(page, "nobody@example.com", "wrong password")  # the same answer for an unknown user
    expect(page.get_by_role("alert")).to_have_text("Invalid user name or password.")
    login(page)
    expect(page.get_by_role("heading", name="Flows")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "roost_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # the session authenticates the API for the page's scripts, but unsafe calls need the CSRF token
    status = page.evaluate("() => fetch('/api/v1/main/flows/validate', {method: 'POST', body: 'x: 1'}).then(r => r.status)")
    assert status == 403
    # keyboard: the skip link is the first stop and leads to the content
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Roost")).to_be_visible()
    page.goto("/ui/main/executions")
    assert "/ui/login" in page.url


def test_flow_editor_deploys_with_validation_at_the_line(page: Any, api: httpx.Client) -> None:
    login(page, )
    page.get_by_role("link", name="Create a flow").click()
    expect(page.locator(".CodeMirror")).to_be_visible()
    set_editor(page, f"id: editor_flow\nnamespace: ui.editor\ntasks:\n  - id: hello\n    type: {LOG}\n    mesage: typo\n")
    problems = page.locator("#problems")
    expect(problems).to_contain_text("line 6")  # the unknown property, at its line
    expect(problems).to_contain_text("mesage")
    expect(page.locator(".CodeMirror-lint-marker-error")).to_have_count(2)  # and the missing message, at line 4
    # completion from the flow schema: property names of the task's type
    page.evaluate("() => { const cm = document.querySelector('.CodeMirror').CodeMirror; cm.setCursor({line: 5, ch: 4}); cm.replaceRange('', {line: 5, ch: 4}, {line: 5, ch: 17}); }")
    page.keyboard.type("mess")
    page.keyboard.press("Control+Space")
    expect(page.locator(".CodeMirror-hints")).to_contain_text("message")
    page.keyboard.press("Enter")
    page.keyboard.type("Hello from the editor")
    expect(problems).to_be_empty()
    shot(page, "02-flow-editor")
    assert_accessible(page, "flow editor")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/ui/main/flows/ui.editor/editor_flow"))
    flow = api.get("/flows/ui.editor/editor_flow", params={"source": "true"}).json()
    assert "Hello from the editor" in flow["source"]
    # a second revision, then its diff
    set_editor(page, flow["source"].replace("Hello from the editor", "Hello again"))
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"saved=2"))
    page.get_by_role("link", name="Revisions").click()
    page.get_by_role("link", name="Changes from revision 1").click()
    expect(page.locator("pre.diff .add")).to_contain_text("Hello again")
    expect(page.locator("pre.diff .del")).to_contain_text("Hello from the editor")
    shot(page, "03-flow-revisions")
    # the list: search narrows it
    page.get_by_role("link", name="Flows", exact=True).click()
    page.get_by_label("Search").fill("editor_fl")
    expect(page.get_by_role("link", name="editor_flow")).to_be_visible()
    shot(page, "04-flows")
    assert_accessible(page, "flows")
