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

from tests.ui.conftest import USER, assert_accessible, login, shot

pytestmark = pytest.mark.e2e
LOG = "io.kestra.plugin.core.log.Log"
RETURN = "io.kestra.plugin.core.debug.Return"


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def set_editor(page: Any, text: str) -> None:
    """Replace the editor's text the way a paste does (CodeMirror keeps its own model)."""
    page.evaluate(
        "text => { const cm = document.querySelector('.CodeMirror').CodeMirror; cm.setValue(text); cm.focus(); }",
        text,
    )


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
    status = page.evaluate(
        "() => fetch('/api/v1/main/flows/validate', {method: 'POST', body: 'x: 1'}).then(r => r.status)"
    )
    assert status == 403
    # keyboard: the skip link is the first stop and leads to the content
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Roost")).to_be_visible()
    page.goto("/ui/main/executions")
    assert "/ui/login" in page.url


def test_flow_editor_deploys_with_validation_at_the_line(page: Any, api: httpx.Client) -> None:
    login(
        page,
    )
    page.get_by_role("link", name="Create a flow").click()
    expect(page.locator(".CodeMirror")).to_be_visible()
    set_editor(
        page,
        f"id: editor_flow\nnamespace: ui.editor\ntasks:\n  - id: hello\n    type: {LOG}\n    mesage: typo\n",
    )
    problems = page.locator("#problems")
    expect(problems).to_contain_text("line 6")  # the unknown property, at its line
    expect(problems).to_contain_text("mesage")
    expect(page.locator(".CodeMirror-lint-marker-error")).to_have_count(
        2
    )  # and the missing message, at line 4
    # completion from the flow schema: property names of the task's type
    page.evaluate(
        "() => { const cm = document.querySelector('.CodeMirror').CodeMirror; cm.setCursor({line: 5, ch: 4}); cm.replaceRange('', {line: 5, ch: 4}, {line: 5, ch: 17}); }"
    )
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


RUN_FLOW = f"""id: ui_run
namespace: ui.run
inputs:
  - id: who
    type: STRING
    defaults: world
  - id: color
    type: ENUM
    values: [red, blue]
    defaults: red
  - id: token
    type: SECRET
    required: false
tasks:
  - id: greet
    type: {LOG}
    message: "hello {{{{ inputs.who }}}} in {{{{ inputs.color }}}}"
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2, 3]
    tasks:
      - id: wait
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - sleep 0.4
  - id: value
    type: {RETURN}
    format: done
"""


def test_execute_watch_the_gantt_and_read_the_logs(page: Any, api: httpx.Client) -> None:
    assert api.post("/flows", content=RUN_FLOW).status_code == 200
    login(page)
    page.goto("/ui/main/flows/ui.run/ui_run?tab=execute")
    expect(page.get_by_label("token")).to_have_attribute("type", "password")  # secrets masked
    page.get_by_label("who").fill("Ada")
    page.get_by_label("color").select_option("blue")
    page.get_by_label("token").fill("s3cr3t-value")
    shot(page, "05-execute-form")
    assert_accessible(page, "execute form")
    page.get_by_role("button", name="Execute").click()
    page.wait_for_url(re.compile(r"/ui/main/executions/ui.run/ui_run/\w+"))
    gantt = page.locator("#gantt")
    expect(gantt).to_have_attribute("data-state", "RUNNING", timeout=10000)  # live while it runs
    expect(gantt).to_have_attribute("data-state", "SUCCESS", timeout=30000)  # updated by the follow events
    expect(page.locator("#execution")).to_have_attribute(
        "data-terminal", "true"
    )  # then the page shows the end
    expect(page.locator("tr[data-task='wait']")).to_have_count(3)
    expect(page.locator("tr[data-task='value'] .state")).to_have_text("SUCCESS")
    shot(page, "06-execution-gantt")
    assert_accessible(page, "execution gantt")
    page.get_by_role("link", name="Logs").click()
    expect(page.locator("#logs")).to_contain_text("hello Ada in blue")
    page.get_by_label("Search the logs").fill("no such line")
    expect(page.locator("#logs li.log:visible")).to_have_count(0)
    page.get_by_label("Search the logs").fill("hello")
    expect(page.locator("#logs li.log:visible")).to_have_count(1)
    shot(page, "07-execution-logs")
    page.get_by_role("link", name="Outputs").click()
    expect(page.locator("main")).to_contain_text("done")
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("main")).not_to_contain_text("s3cr3t-value")  # the secret input stays masked
    page.get_by_role("link", name="Topology").click()
    expect(page.locator("svg.topology g.ok[data-task='greet']")).to_have_count(1)
    shot(page, "08-execution-topology")


def test_live_logs_stream_while_running(page: Any, api: httpx.Client) -> None:
    slow = RUN_FLOW.replace("id: ui_run", "id: ui_slow").replace("sleep 0.4", "sleep 1")
    assert api.post("/flows", content=slow).status_code == 200
    ex = api.post("/executions/ui.run/ui_slow").json()
    login(page)
    page.goto(f"/ui/main/executions/ui.run/ui_slow/{ex['id']}?tab=logs")
    expect(page.locator("#logs")).to_have_attribute("data-follow", "true")
    expect(page.locator("#logs")).to_contain_text("hello world in red", timeout=15000)
    page.get_by_label("Minimum level").select_option("ERROR")
    expect(page.locator("#logs")).not_to_contain_text("hello world")
    api.delete(f"/executions/{ex['id']}/kill")


def test_plugin_default_through_the_form_is_used_by_validation(page: Any, api: httpx.Client) -> None:
    flow = f"id: needs_default\nnamespace: ui.defaults.team\ntasks:\n  - id: log\n    type: {LOG}\n"
    assert (
        api.post("/flows/validate", content=flow, headers={"content-type": "application/x-yaml"})
        .json()[0]
        .get("constraints")
    )
    login(page)
    page.goto("/ui/main/namespaces")
    page.goto("/ui/main/namespaces/ui.defaults?tab=plugindefaults")
    page.get_by_role("button", name="Add plugin default").click()
    page.get_by_label("Plugin type").select_option(LOG)
    form = page.locator("#pd-form")
    required = form.locator("fieldset").filter(has_text="Required properties")
    expect(required.get_by_label(re.compile("^message"))).to_be_visible()  # required apart from optional
    expect(form.locator("details.optional")).to_contain_text("Optional properties")
    required.get_by_label(re.compile("^message")).fill("set by the namespace default")
    form.locator("details.optional summary").click()
    form.get_by_label(re.compile("^level")).select_option("WARN")
    shot(page, "09-plugin-default-form")
    assert_accessible(page, "plugin default form")
    form.get_by_role("button", name="Save default").click()
    expect(page.locator(".default-item")).to_contain_text(LOG)
    expect(page.locator(".default-item pre")).to_contain_text("set by the namespace default")
    expect(page.get_by_role("link", name="Show changes")).to_have_count(1)
    shot(page, "10-plugin-defaults")
    assert_accessible(page, "plugin defaults")
    # validation (the API route the editor uses) now honours the default
    assert (
        "constraints"
        not in api.post(
            "/flows/validate", content=flow, headers={"content-type": "application/x-yaml"}
        ).json()[0]
    )
    # and the editor shows no problem for the same flow
    page.goto("/ui/main/flows/new")
    set_editor(page, flow)
    page.wait_for_timeout(1500)
    expect(page.locator("#problems")).to_be_empty()
    # a value the type does not have is refused, with the property named; nothing saved
    page.goto("/ui/main/namespaces/ui.defaults?tab=plugindefaults")
    page.get_by_text("Edit as YAML").click()
    page.evaluate(
        "() => { const cm = document.querySelector('#pd-yaml-panel .CodeMirror').CodeMirror; "
        "cm.setValue(cm.getValue().replace('level:', 'levle:')); }"
    )
    page.get_by_role("button", name="Save YAML").click()
    expect(page.locator("#pd-problems")).to_contain_text("levle")
    assert api.get("/namespaces/ui.defaults/plugindefaults").json()["revision"] == 1
    exported = api.post("/namespaces/ui.defaults/plugindefaults/export").text
    assert "set by the namespace default" in exported and "level: WARN" in exported


ASSET_FLOW = f"""id: ui_assets
namespace: ui.assets
tasks:
  - id: build
    type: {LOG}
    message: building
    assets:
      inputs:
        - id: raw_orders
          type: io.kestra.plugin.ee.assets.Table
      outputs:
        - id: orders
          type: io.kestra.plugin.ee.assets.Table
          metadata:
            owner: data
  - id: report
    type: {LOG}
    message: reporting
    assets:
      inputs:
        - id: orders
          type: io.kestra.plugin.ee.assets.Table
      outputs:
        - id: orders_report
          type: io.kestra.plugin.ee.assets.Dataset
"""


def test_assets_inventory_and_lineage(page: Any, api: httpx.Client) -> None:
    assert api.post("/flows", content=ASSET_FLOW).status_code == 200
    assert (
        api.post("/executions/ui.assets/ui_assets", params={"wait": "true"}).json()["state"]["current"]
        == "SUCCESS"
    )
    login(page)
    page.goto("/ui/main/assets")
    page.get_by_label("Metadata (key=value)").fill("owner=data")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name="orders", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="orders_report")).to_have_count(0)
    shot(page, "11-assets")
    assert_accessible(page, "assets")
    page.get_by_role("link", name="orders", exact=True).click()
    lineage = page.locator("svg.lineage")
    expect(lineage.locator(".asset.focus")).to_contain_text("orders")
    expect(lineage.locator(".asset")).to_have_count(3)  # upstream raw_orders, downstream orders_report
    expect(page.locator("main")).to_contain_text("raw_orders → orders")
    expect(page.locator("main")).to_contain_text("orders → orders_report")
    shot(page, "12-asset-lineage")
    assert_accessible(page, "asset")
    lineage.get_by_role("link", name=re.compile("raw_orders")).click()
    expect(page.get_by_role("heading", name="raw_orders")).to_be_visible()


def test_plugins_and_type_documentation(page: Any) -> None:
    login(page)
    page.goto("/ui/main/plugins")
    expect(page.get_by_role("heading", name=re.compile("^core"))).to_be_visible()
    shot(page, "13-plugins")
    assert_accessible(page, "plugins")
    page.get_by_role("link", name=RETURN, exact=True).click()
    expect(page.get_by_role("heading", name=RETURN)).to_be_visible()
    expect(page.locator("table").first).to_contain_text("format")
    expect(page.locator("main")).to_contain_text("Outputs")
    expect(page.locator("pre.example")).to_contain_text(f"type: {RETURN}")
    shot(page, "14-plugin-type")
    assert_accessible(page, "plugin type")


def test_namespace_files_kv_and_secrets(page: Any, api: httpx.Client) -> None:
    login(page)
    page.goto("/ui/main/namespaces/ui.files?tab=files")
    page.get_by_label("File", exact=True).set_input_files(
        {"name": "query.sql", "mimeType": "text/plain", "buffer": b"select 1;\n"}
    )
    page.get_by_label("Path in the namespace").fill("sql/query.sql")
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("link", name="query.sql")).to_be_visible()
    page.evaluate("() => document.querySelector('.CodeMirror').CodeMirror.setValue('select 2;\\n')")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#notice")).to_contain_text("Saved sql/query.sql")
    assert api.get("/namespaces/ui.files/files", params={"path": "/sql/query.sql"}).text == "select 2;\n"
    shot(page, "15-namespace-files")
    assert_accessible(page, "namespace files")
    page.get_by_role("link", name="KV store").click()
    page.get_by_label("Key").fill("threshold")
    page.get_by_label("Type").select_option("NUMBER")
    page.get_by_label("Value").fill("42")
    page.get_by_label(re.compile("^Expires after")).fill("PT1H")
    page.get_by_role("button", name="Set").click()
    row = page.locator("tr").filter(has_text="threshold")
    expect(row).to_contain_text("NUMBER")
    expect(row).not_to_contain_text("never")
    shot(page, "16-namespace-kv")
    assert_accessible(page, "namespace kv")
    page.get_by_role("link", name="Secrets").click()
    expect(page.locator("main")).to_contain_text("WAREHOUSE_PASSWORD")
    expect(page.locator("main")).not_to_contain_text("s3cr3t")  # names only
