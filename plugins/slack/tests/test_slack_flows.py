"""Packaging, the standard type checks, Kestra's documented examples, and a flow on the real engine."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from fake_slack import BOT_TOKEN
from roost.testing.suite import TypeSuite
from roost_slack import tasks, trigger

# Kestra's documented examples for its Slack App types, as written in the plugin's sources.
KESTRA_EXAMPLES = [
    """
id: slack_create_channel
namespace: company.team
tasks:
  - id: create_channel
    type: io.kestra.plugin.slack.app.conversations.Create
    token: "{{ secret('SLACK_TOKEN') }}"
    name: "new-project-channel"
    isPrivate: false
""",
    """
id: slack_invite_users
namespace: company.team
tasks:
  - id: invite_users
    type: io.kestra.plugin.slack.app.conversations.Invite
    token: "{{ secret('SLACK_TOKEN') }}"
    channel: "C1234567890"
    users: ["U1234567890", "U0987654321"]
""",
    """
id: slack_edit_canvas
namespace: company.team
tasks:
  - id: edit_canvas
    type: io.kestra.plugin.slack.app.canvases.Edit
    token: "{{ secret('SLACK_TOKEN') }}"
    canvasId: "F1234567890"
    changes:
      - operation: "insert_at_end"
        documentContent:
          type: "markdown"
          markdown: "## New Section\\n\\nThis is new content."
""",
    """
id: slack_create_canvas
namespace: company.team
tasks:
  - id: create_canvas
    type: io.kestra.plugin.slack.app.canvases.Create
    token: "{{ secret('SLACK_TOKEN') }}"
    title: "Project Documentation"
    documentContent:
      type: "markdown"
      markdown: |
        ## Overview
""",
    """
id: slack_process_reactions
namespace: company.team
tasks:
  - id: post_message
    type: io.kestra.plugin.slack.app.chats.Post
    token: "{{ secret('SLACK_TOKEN') }}"
    channel: "#general"
    messageText: "React to this message!"
  - id: get_reactions
    type: io.kestra.plugin.slack.app.reactions.Get
    token: "{{ secret('SLACK_TOKEN') }}"
    channel: "#general"
    timestamp: "{{ outputs.post_message.timestamp }}"
""",
    """
id: slack_lookup_user
namespace: company.team
tasks:
  - id: lookup_user
    type: io.kestra.plugin.slack.app.users.LookupByEmail
    token: "{{ secret('SLACK_TOKEN') }}"
    email: "user@example.com"
""",
    """
id: slack_mention_trigger
namespace: company.team
triggers:
  - id: slack_mention
    type: io.kestra.plugin.slack.app.core.Trigger
    key: slackEvents42
    botToken: "{{ secret('SLACK_BOT_TOKEN') }}"
    signingSecret: "{{ secret('SLACK_SIGNING_SECRET') }}"
tasks:
  - id: respond_to_mention
    type: io.kestra.plugin.slack.app.chats.Post
    token: "{{ secret('SLACK_BOT_TOKEN') }}"
    channel: "{{ trigger.body.channel }}"
    messageText: "Hello! You mentioned me."
    timestamp: "{{ trigger.body.ts }}"
""",
]

# An incident flow: open a channel, invite the on-call engineer found by e-mail, post a Block Kit
# summary, reply in its thread, attach a runbook canvas, react, and share the log file.
INCIDENT = """
id: incident
namespace: company.team
inputs:
  - id: oncall
    type: STRING
    defaults: ada@example.com
tasks:
  - id: channel
    type: io.kestra.plugin.slack.app.conversations.Create
    token: "{{ secret('SLACK_TOKEN') }}"
    baseUrl: "{{ secret('SLACK_BASE_URL') }}"
    name: "inc-{{ execution.id | lower }}"
    assets:
      enableAuto: true
  - id: oncall
    type: io.kestra.plugin.slack.app.users.LookupByEmail
    token: "{{ secret('SLACK_TOKEN') }}"
    baseUrl: "{{ secret('SLACK_BASE_URL') }}"
    email: "{{ inputs.oncall }}"
  - id: invite
    type: io.kestra.plugin.slack.app.conversations.Invite
    token: "{{ secret('SLACK_TOKEN') }}"
    baseUrl: "{{ secret('SLACK_BASE_URL') }}"
    channel: "{{ outputs.channel.id }}"
    users: ["{{ outputs.oncall.id }}"]
  - id: summary
    type: io.kestra.plugin.slack.app.chats.Post
    token: "{{ secret('SLACK_TOKEN') }}"
    baseUrl: "{{ secret('SLACK_BASE_URL') }}"
    channel: "{{ outputs.channel.id }}"
    payload: |
      {"text": "Incident opened",
       "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Incident* for <@{{ outputs.oncall.id }}>"}}]}
  - id: reply
    type: io.kestra.plugin.slack.app.chats.Post
    token: "{{ secret('SLACK_TOKEN') }}"
    baseUrl: "{{ secret('SLACK_BASE_URL') }}"
    channel: "{{ outputs.channel.id }}"
    timestamp: "{{ outputs.summary.timestamp }}"
    messageText: "Runbook attached."
  - id: ack
    type: io.kestra.plugin.slack.app.reactions.Add
    token: "{{ secret('SLACK_TOKEN') }}"
    baseUrl: "{{ secret('SLACK_BASE_URL') }}"
    channel: "{{ outputs.channel.id }}"
    timestamp: "{{ outputs.summary.timestamp }}"
    name: eyes
  - id: runbook
    type: io.kestra.plugin.slack.app.canvases.Create
    token: "{{ secret('SLACK_TOKEN') }}"
    baseUrl: "{{ secret('SLACK_BASE_URL') }}"
    title: Runbook
    channelId: "{{ outputs.channel.id }}"
    documentContent:
      type: markdown
      markdown: "1. Check the dashboards"
    assets:
      enableAuto: true
  - id: log
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: [incident.log]
    commands:
      - printf 'error at 12:00' > incident.log
  - id: share
    type: io.kestra.plugin.slack.app.files.Upload
    token: "{{ secret('SLACK_TOKEN') }}"
    baseUrl: "{{ secret('SLACK_BASE_URL') }}"
    from: "{{ outputs.log.outputFiles['incident.log'] }}"
    filename: incident.log
    channels: ["{{ outputs.channel.id }}"]
    timestamp: "{{ outputs.summary.timestamp }}"
    assets:
      enableAuto: true
"""


class TestSlackTypes(TypeSuite):
    types = [*tasks.TASKS, trigger.Trigger]
    examples = [*KESTRA_EXAMPLES, INCIDENT]


def test_entry_point_registers_every_type(monkeypatch):
    from roost.plugins import Plugins

    monkeypatch.setenv("ROOST_LOAD_PLUGINS", "slack")
    plugins = Plugins()
    assert not [b for b in plugins.broken if b.name == "slack"]
    assert {t.type_id for t in tasks.TASKS} <= set(plugins.task_types())
    assert len(tasks.TASKS) == 28 and all(
        t.type_id.startswith("io.kestra.plugin.slack.app.") for t in tasks.TASKS
    )
    assert plugins.info["slack"].distribution == "roost-plugin-slack"
    assert plugins.type_owner("io.kestra.plugin.slack.app.Trigger") == "slack"  # Kestra's older id


def test_plugin_module_imports_no_task_code():
    code = "import sys, roost_slack.plugin; print('roost_slack.tasks' in sys.modules, 'slack_sdk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


@pytest.mark.parametrize(
    "task", tasks.TASKS, ids=lambda t: t.type_id.removeprefix("io.kestra.plugin.slack.app.")
)
def test_every_property_and_output_is_documented(task):
    assert task.__doc__ and task.__doc__.strip()
    assert [n for n, f in task.model_fields.items() if not f.description] == []
    assert [n for n, f in task.Out.model_fields.items() if not f.description] == []
    assert "token" in task.model_json_schema(by_alias=True)["required"]


def test_incident_flow_on_the_engine(run_flow, roost_engine, fake, monkeypatch):
    monkeypatch.setenv("SECRET_SLACK_BASE_URL", base64.b64encode(fake.api_url.encode()).decode())
    emitted = []
    roost_engine.asset_sink = lambda job, ctx, bundles: emitted.extend(bundles)
    ex = run_flow(INCIDENT)
    logs = roost_engine.store.get_logs("main", ex.id)
    assert ex.state.current == "SUCCESS", [log["message"] for log in logs]
    runs = {tr.task_id: tr.outputs for tr in ex.task_runs}
    channel = runs["channel"]["id"]
    assert fake.channels[channel]["name"].startswith("inc-")
    assert runs["oncall"]["id"] in fake.members[channel]
    summary, reply = fake.messages[channel]
    assert summary["blocks"][0]["text"]["text"] == f"*Incident* for <@{runs['oncall']['id']}>"
    assert reply["thread_ts"] == summary["ts"] and summary["reactions"][0]["name"] == "eyes"
    assert fake.canvases[runs["runbook"]["canvasId"]]["channel_id"] == channel
    shared = fake.files[runs["share"]["id"]]
    assert shared["data"] == b"error at 12:00" and shared["thread_ts"] == summary["ts"]
    ids = {a.id for b in emitted for a in b.outputs}
    team = fake.team_id
    assert ids == {f"slack:channel:{team}:{channel}", f"slack:canvas:{team}:{runs['runbook']['canvasId']}",
                   f"slack:file:{team}:{runs['share']['id']}"}  # fmt: skip
    logs = roost_engine.store.get_logs("main", ex.id)
    assert not any(BOT_TOKEN in log["message"] for log in logs)
